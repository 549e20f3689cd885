// The strict JSON parser accepts exactly what JSON.parse accepts and builds the same values,
// except that it refuses duplicate keys and nesting deeper than MAX_JSON_DEPTH.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_JSON_DEPTH, parseStrictJson } from '../src/formats/strict-json.js';

class Refused {
  constructor(
    readonly problem: string,
    readonly index: number,
  ) {}
}

function strict(text: string): unknown {
  return parseStrictJson(text, (problem, index) => {
    throw new Refused(problem, index);
  });
}

/** What JSON.parse makes of `text`, or Refused. */
function reference(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return new Refused('', -1);
  }
}

/** Strict and JSON.parse agree: both refuse, or both give equal values (-0 and "__proto__" keys included). */
function expectAgreement(text: string): void {
  let ours: unknown;
  try {
    ours = strict(text);
  } catch (error) {
    if (!(error instanceof Refused)) throw error;
    const theirs = reference(text);
    if (theirs instanceof Refused) return;
    // JSON.parse accepted it: only a duplicate key or the depth limit may refuse it.
    expect(error.problem, text).toMatch(/^has the key .* twice in one object$|^nests arrays and objects more than 64 deep$/);
    return;
  }
  expect(sameValues(ours, reference(text)), text).toBe(true);
}

/** Deep equality that tells -0 from 0 and compares own keys in order. */
function sameValues(a: unknown, b: unknown): boolean {
  if (typeof a !== 'object' || a === null || typeof b !== 'object' || b === null) return Object.is(a, b);
  if (Array.isArray(a) !== Array.isArray(b) || Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false;
  const keysA = Reflect.ownKeys(a);
  const keysB = Reflect.ownKeys(b);
  return keysA.length === keysB.length && keysA.every((key, i) => key === keysB[i] && sameValues((a as Record<PropertyKey, unknown>)[key], (b as Record<PropertyKey, unknown>)[key]));
}

describe('agrees with JSON.parse', () => {
  const TEXTS = [
    '{}',
    '[]',
    '0',
    '-0',
    '1.5e-3',
    '1E+2',
    '-1e400',
    '1e-400',
    '123456789012345678901234567890',
    '"a"',
    'true',
    'false',
    'null',
    ' \t\n\r{ "a" : [ 1 , 2 ] } \n',
    '{"__proto__":{"x":1}}',
    '{"constructor":1,"toString":2,"hasOwnProperty":3}',
    '{"2":1,"1":2,"b":3,"a":4}',
    '"\\u0041\\ud83d\\ude00\\ud800\\"\\\\\\/\\b\\f\\n\\r\\t"',
    '"\u2028\u2029é😀"',
    '[[[[]]]]',
    // Refused by both:
    '',
    ' ',
    '{',
    '[1,]',
    '{"a":1,}',
    '01',
    '-',
    '1.',
    '.5',
    '+1',
    '1e',
    '1e+',
    'NaN',
    'Infinity',
    '-Infinity',
    "'a'",
    '"\t"',
    '"\\x41"',
    '"\\u12"',
    '"\\u12G4"',
    '\ufeff{}',
    '{} // c',
    '/* c */ {}',
    'tru',
    'nul',
    '{"a" 1}',
    '{a:1}',
    '[1 2]',
    '"abc',
    '1 2',
    '\u000b1',
    '\u00a01',
    '{"a":1}}',
    '[',
    ']',
    '"\\',
    '"\\u',
    '{"a":}',
    '{,}',
    '[,1]',
    '--1',
    '0x10',
    '1_000',
    '"\u0000"',
  ];
  it.each(TEXTS.map((text) => [JSON.stringify(text), text]))('%s', (_, text) => expectAgreement(text));

  it('on any JSON value, however printed', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 6 }), fc.constantFrom(undefined, 1, '\t'), (value, indent) => {
        expectAgreement(JSON.stringify(value, null, indent));
      }),
      { numRuns: 500, seed: 13 },
    );
  });

  it("on strings of JSON's characters", () => {
    const piece = fc.constantFrom('{', '}', '[', ']', ':', ',', '"', '\\', 'u', '0', '1', '9', '-', '+', '.', 'e', 'E', ' ', '\n', 'a', 'true', 'null', '"k"', '\u0001');
    fc.assert(
      fc.property(
        fc.array(piece, { maxLength: 24 }).map((pieces) => pieces.join('')),
        expectAgreement,
      ),
      { numRuns: 3000, seed: 13 },
    );
  });
});

describe('refuses', () => {
  it.each([
    ['a duplicate key', '{"a":1,"b":2,"a":3}', 'has the key "a" twice in one object', 13],
    ['a duplicate key spelled with an escape', '{"a":1,"\\u0061":3}', 'has the key "a" twice in one object', 7],
    ['"__proto__" twice', '{"__proto__":1,"__proto__":2}', 'has the key "__proto__" twice in one object', 15],
    ['a duplicate key deep inside', '[{"x":{"k":1,"k":2}}]', 'has the key "k" twice in one object', 13],
    ['a duplicate key with control characters, escaped in the message', '{"\\u001b":1,"\\u001b":2}', 'has the key "\\u001b" twice in one object', 12],
    [`nesting ${MAX_JSON_DEPTH + 1} deep`, `${'['.repeat(MAX_JSON_DEPTH + 1)}${']'.repeat(MAX_JSON_DEPTH + 1)}`, `nests arrays and objects more than ${MAX_JSON_DEPTH} deep`, MAX_JSON_DEPTH],
    ['100,000 levels of objects', `${'{"a":'.repeat(100_000)}1${'}'.repeat(100_000)}`, `nests arrays and objects more than ${MAX_JSON_DEPTH} deep`, 5 * MAX_JSON_DEPTH],
    ['a syntax error', '{"a":1 "b":2}', "is not JSON: expected ',' or '}', found \"\\\"\"", 7],
    ['text after the value', '{} x', 'is not JSON: expected the end of the text after the value, found "x"', 3],
  ])('%s', (_, text, problem, index) => {
    expect(() => strict(text)).toThrow(Refused);
    try {
      strict(text);
    } catch (error) {
      expect(error).toEqual(new Refused(problem, index));
    }
  });

  it(`accepts nesting exactly ${MAX_JSON_DEPTH} deep`, () => {
    const text = `${'['.repeat(MAX_JSON_DEPTH)}${']'.repeat(MAX_JSON_DEPTH)}`;
    expect(strict(text)).toEqual(JSON.parse(text));
  });

  it('keeps "__proto__" a plain key', () => {
    const value = strict('{"__proto__":{"polluted":true}}') as Record<string, unknown>;
    expect(Object.getPrototypeOf(value)).toBe(Object.prototype);
    expect(Object.hasOwn(value, '__proto__')).toBe(true);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});
