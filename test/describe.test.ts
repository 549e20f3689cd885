// The one value formatter: ordinary values come out as before (numbers as JavaScript prints
// them, the rest as JSON, shortened), and no value, however hostile, makes it throw, run the
// caller's code, print control characters or grow past its bound.

import { describe, expect, it } from 'vitest';
import { describeError, describeName, describeValue, typeName } from '../src/describe.js';
import { throwingProxy } from './support/fuzz.js';

const nested = (depth: number): unknown => {
  let value: unknown = [];
  for (let i = 0; i < depth; i++) value = [value];
  return value;
};

describe('describeValue on ordinary values', () => {
  const CASES: [string, unknown, string][] = [
    ['an integer', 8, '8'],
    ['a fraction', 1.5, '1.5'],
    ['NaN', NaN, 'NaN'],
    ['-Infinity', -Infinity, '-Infinity'],
    ['a large number', 1e21, '1e+21'],
    ['a string', 'abc', '"abc"'],
    ['a string with quotes and a newline', 'a"b\n', '"a\\"b\\n"'],
    ['true', true, 'true'],
    ['null', null, 'null'],
    ['undefined', undefined, 'undefined'],
    ['a function', () => 1, 'function'],
    ['an array', [1, 'x', null], '[1,"x",null]'],
    ['an object', { a: 1, b: [true] }, '{"a":1,"b":[true]}'],
    ['a null-prototype object', Object.create(null), '{}'],
    ['undefined fields are left out, as JSON does', { a: undefined, b: 2 }, '{"b":2}'],
    ['a long array, shortened', Array.from({ length: 100 }, (_, i) => i), `${JSON.stringify(Array.from({ length: 100 }, (_, i) => i)).slice(0, 77)}...`],
    ['a long string, shortened', 'x'.repeat(200), `"${'x'.repeat(76)}...`],
    ['a BigInt', 10n, '10n'],
    ['a symbol', Symbol('s'), 'Symbol(s)'],
  ];
  it.each(CASES)('%s', (_, value, shown) => expect(describeValue(value)).toBe(shown));
});

describe('describeValue and typeName on hostile values', () => {
  let calls = 0;
  const count = () => {
    calls++;
    return 1;
  };
  const cyclic: Record<string, unknown> = { a: 1 };
  cyclic.self = cyclic;
  const throwing = throwingProxy();
  const revocable = Proxy.revocable([1, 2], {});
  revocable.revoke();
  const controlName = class {};
  Object.defineProperty(controlName, 'name', { value: '\u001b]0;title\u0007' });

  const CASES: [string, () => unknown, RegExp][] = [
    ['a 10,000-deep array', () => nested(10_000), /^\[\[\[\[\[\[\[\[.*\.\.\.$/],
    ['a cycle', () => cyclic, /^Object$/],
    [
      'an array holding itself',
      () => {
        const a: unknown[] = [1];
        a.push(a);
        return a;
      },
      /^Array$/,
    ],
    ['a BigInt inside an array', () => [1n, 2], /^\[1n,2\]$/],
    ['non-finite numbers inside an array, as JavaScript prints them', () => [NaN, -Infinity], /^\[NaN,-Infinity\]$/],
    [
      'a getter',
      () => ({
        get x() {
          return count();
        },
      }),
      /^Object$/,
    ],
    ['an array with a getter element', () => Object.defineProperty([0], '0', { get: count }), /^Array$/],
    ['a Proxy whose traps throw', () => throwing, /^object$/],
    ['an array of Proxies whose traps throw', () => [throwing], /^Array$/],
    ['a revoked Proxy', () => revocable.proxy, /^object$/],
    ['a Proxy with a counting get trap', () => new Proxy({ a: 1 }, { get: count }), /^\{"a":1\}$/],
    ['a 100 MB string', () => 'x'.repeat(100_000_000), /^"x{76}\.\.\.$/],
    ['an array of length 2^32-1', () => new Array(2 ** 32 - 1), /^\[null,null,.*\.\.\.$/],
    ['a 100M-element typed array', () => new Float32Array(100_000_000), /^Float32Array$/],
    ['a 2^20-bit BigInt', () => 2n ** (2n ** 20n), /^a BigInt beyond ±2\^256$/],
    ['a class instance', () => new Map([[1, 2]]), /^Map$/],
    ['a string with C0, DEL, C1, bidi and zero-width characters', () => 'a\u001b[2J\u007f\u009b\u202e\u200b\u2028b', /^"a\\u001b\[2J\\u007f\\u009b\\u202e\\u200b\\u2028b"$/],
    ['a lone surrogate', () => '\ud800', /^"\\ud800"$/],
    ['a key with control characters', () => ({ '\u001b[2J': 1 }), /^\{"\\u001b\[2J":1\}$/],
    ['a constructor name with control characters', () => new controlName(), /^\\u001b\]0;title\\u0007$/],
    ['an own "constructor" field', () => ({ constructor: { name: '\u001b[2J' } }), /^\{"constructor":\{"name":"\\u001b\[2J"\}\}$/],
    ['a symbol with control characters', () => Symbol('\u001b[2J'), /^Symbol\(\\u001b\[2J\)$/],
  ];
  it.each(CASES)('%s', (_, make, shown) => {
    const value = make();
    calls = 0;
    const text = describeValue(value);
    expect(text).toMatch(shown);
    expect(text.length).toBeLessThanOrEqual(80);
    expect(calls).toBe(0);
    expect(() => typeName(value)).not.toThrow();
    expect(calls).toBe(0);
  });
});

describe('describeName', () => {
  it.each([
    ['a plain name', 'layer.0.weight', "'layer.0.weight'"],
    ['a name with quotes and control characters', 'it\'s "w"\n\u001b', "'it's \\\"w\\\"\\n\\u001b'"],
    ['a very long name, shortened', 'w'.repeat(10_000), `'${'w'.repeat(196)}...`],
  ])('%s', (_, name, shown) => expect(describeName(name)).toBe(shown));
});

describe('describeError', () => {
  const revocable = Proxy.revocable({}, {});
  revocable.revoke();
  it.each([
    ['an Error', new TypeError('bad \u001b[2J'), 'TypeError: bad \\u001b[2J'],
    ['an Error without a message', new RangeError(), 'RangeError'],
    [
      'a message behind a getter, not run',
      Object.defineProperty(new Error(), 'message', {
        get() {
          throw new Error('ran');
        },
      }),
      'Error',
    ],
    ['a thrown string', 'oops', '"oops"'],
    ['a thrown revoked Proxy', revocable.proxy, 'object'],
    ['a long message, shortened', new Error('x'.repeat(500)), `Error: ${'x'.repeat(77)}...`],
  ])('%s', (_, error, shown) => expect(describeError(error)).toBe(shown));
});
