// Name patterns (src/name-pattern.ts): the same answers as RegExp.prototype.test on every pattern
// of the supported subset (generated) and any name, in linear time on the patterns that make a
// backtracking engine take seconds to years, and a typed error naming the argument and the
// position for everything else.

import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { compileNamePattern, MAX_PATTERN_NESTING, MAX_PATTERN_PROGRAM } from '../src/name-pattern.js';
import { EdgeMoqError, InvalidInputError } from '../src/errors.js';
import { Quantizer } from '../src/quantizer.js';
import { blocksFromModel } from '../src/tfjs/eigenvalues.js';
import { FUZZ_SEED, FUZZ_TIMEOUT_MS, fuzzRuns } from './support/fuzz.js';

vi.setConfig({ testTimeout: FUZZ_TIMEOUT_MS });

// Letters whose case folding is not ASCII's (µ Μ μ fold together; the Kelvin sign and ſ fold to
// nothing in non-unicode mode), line terminators, punctuation that is syntax elsewhere.
const ALPHABET = ['a', 'b', 'A', 'B', '0', '7', '_', '.', '-', ' ', '\n', '\u2028', 'µ', 'Μ', 'μ', '\u212a', 'k', 'K', 'ſ',
  's', 'S', 'ß', 'é', 'É', '{', '}', ']', '/', '\t', '\ud83d'];
const SYNTAX = /[\\^$.|?*+()[\]{}/-]/;

const hex = (code: number, digits: number) => code.toString(16).padStart(digits, '0');

/** A literal character as a pattern writes it: raw, escaped, or as \xHH / \uHHHH. */
const literal = fc.tuple(fc.constantFrom(...ALPHABET), fc.nat(3)).map(([c, form]) => {
  const code = c.charCodeAt(0);
  if (form === 1 && code < 256) return `\\x${hex(code, 2)}`;
  if (form === 2) return `\\u${hex(code, 4).toUpperCase()}`;
  if (SYNTAX.test(c)) return `\\${c}`;
  if (c === '\n' && form === 3) return '\\n';
  return c;
});

const classChar = fc.constantFrom(...ALPHABET).map((c) => (/[\\\]^-]/.test(c) ? `\\${c}` : c === '\n' ? '\\n' : c));
const classItem = fc.oneof(
  classChar,
  fc.tuple(fc.constantFrom(...ALPHABET), fc.constantFrom(...ALPHABET)).map(([x, y]) => {
    const [lo, hi] = x.charCodeAt(0) <= y.charCodeAt(0) ? [x, y] : [y, x];
    const end = (c: string) => `\\u${hex(c.charCodeAt(0), 4)}`;
    return `${end(lo)}-${end(hi)}`;
  }),
  fc.constantFrom('\\d', '\\D', '\\w', '\\W', '\\s', '\\S', '\\b', '\\-', 'a-z', 'A-Z', '0-9', '\\d-z', 'a-\\w', '-', '\\x00-\\x7f'),
);
const characterClass = fc.tuple(fc.boolean(), fc.array(classItem, { maxLength: 4 }))
  .map(([negated, items]) => `[${negated ? '^' : ''}${items.join('')}]`);

const quantifier = fc.tuple(fc.constantFrom('*', '+', '?', '{2}', '{0,1}', '{1,}', '{0,2}', '{1,3}', '{0}'), fc.boolean())
  .map(([q, lazy]) => (lazy ? `${q}?` : q));

const { pattern } = fc.letrec<{ pattern: string; alternatives: string; term: string; atom: string }>((tie) => ({
  pattern: fc.oneof({ depthSize: 'small', withCrossShrink: true }, tie('alternatives'), tie('term')),
  alternatives: fc.array(fc.array(tie('term'), { maxLength: 4 }).map((terms) => terms.join('')), { minLength: 1, maxLength: 3 })
    .map((options) => options.join('|')),
  term: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    tie('atom'),
    fc.tuple(tie('atom'), quantifier).map(([a, q]) => a + q),
    fc.constantFrom('^', '$', '\\b', '\\B'),
  ),
  atom: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    literal,
    fc.constantFrom('.', '\\d', '\\D', '\\w', '\\W', '\\s', '\\S', '{', '}', ']', '(?:\\0)'), // \0 then a digit is octal
    characterClass,
    fc.tuple(fc.constantFrom('(', '(?:'), tie('pattern')).map(([open, inner]) => `${open}${inner})`),
  ),
}));

const name = fc.array(fc.constantFrom(...ALPHABET), { maxLength: 12 }).map((units) => units.join(''));
const flags = fc.subarray(['g', 'i', 'm', 's', 'y']).map((f) => f.join(''));

describe('compileNamePattern agrees with RegExp.prototype.test', () => {
  it('on generated patterns of the supported subset, every flag combination, and names around them', () => {
    fc.assert(fc.property(pattern, flags, fc.array(name, { minLength: 1, maxLength: 8 }), (source, f, names) => {
      let native: RegExp;
      try {
        native = new RegExp(source, f.replace(/[gy]/g, ''));
      } catch {
        fc.pre(false);
        return;
      }
      const fromRegExp = compileNamePattern(new RegExp(source, f), 'pattern');
      const fromString = f === '' ? compileNamePattern(source, 'pattern') : fromRegExp;
      for (const n of names) {
        const expected = native.test(n);
        expect(fromRegExp.test(n), `/${source}/${f} on ${JSON.stringify(n)}`).toBe(expected);
        expect(fromString.test(n)).toBe(expected);
      }
    }), { numRuns: fuzzRuns(3000), seed: FUZZ_SEED });
  });

  it.each([
    ['layer\\.\\d+\\.attention', '', ['bert.layer.11.attention.self.query.weight', 'layer.x.attention', 'layerX1.attention'], [true, false, false]],
    ['^encoder_\\d/kernel$', '', ['encoder_0/kernel', 'encoder_10/kernel', 'x/encoder_0/kernel'], [true, false, false]],
    ['(?:query|key|value)\\.weight', '', ['attn.key.weight', 'attn.keys.weight'], [true, false]],
    ['(?<part>dense)_\\d{1,2}', '', ['dense_12', 'dense_'], [true, false]],
    ['ATTENTION', 'i', ['bert.attention.self', 'attentio'], [true, false]],
    ['\\bbias\\b', '', ['fc.bias', 'fc.biased'], [true, false]],
    ['^b', 'm', ['a\nb', 'ab'], [true, false]],
    ['a.b', 's', ['a\nb'], [true]],
    ['', '', ['', 'anything'], [true, true]],
    ['[^]', '', ['', 'x'], [false, true]],
    ['a{', '', ['a{', 'a'], [true, false]],
    ['x{1,2', '', ['x{1,2'], [true]],
    ['(?:){99999999999}x', '', ['x'], [true]],
  ])('%s (flags "%s")', (source, f, names, answers) => {
    const compiled = compileNamePattern(new RegExp(source, f), 'pattern');
    expect(names.map((n) => compiled.test(n))).toEqual(answers);
    expect(names.map((n) => new RegExp(source, f).test(n))).toEqual(answers);
  });

  it('keeps no state between calls: a /g or /y RegExp answers every name the same way each time', () => {
    for (const f of ['g', 'y', 'gy']) {
      const compiled = compileNamePattern(new RegExp('weight', f), 'include');
      expect([compiled.test('a.weight'), compiled.test('a.weight'), compiled.test('b.weight')]).toEqual([true, true, true]);
      expect(compiled.flags).toBe('');
    }
  });

  it('reads a RegExp through the intrinsic getters, not overridable properties', () => {
    class Lying extends RegExp {
      override get source(): string { return 'x'; }
      override get flags(): string { return 'i'; }
    }
    const compiled = compileNamePattern(new Lying('a'), 'include');
    expect([compiled.source, compiled.flags, compiled.test('a'), compiled.test('x'), compiled.test('A')]).toEqual(['a', '', true, false, false]);
  });
});

describe('patterns that make a backtracking engine blow up', () => {
  // Each takes seconds (at 25-30 characters) to longer than a lifetime with RegExp; here every
  // one is linear in the name: the answers are asserted, the times are in bench/ (README).
  const a = (n: number) => 'a'.repeat(n);
  it.each([
    ['^(a+)+$', a(31) + 'b', false],
    ['^(a+)+$', a(100_000), true],
    ['(a|a)*b', a(100_000), false],
    ['(a*)*b', a(100_000), false],
    ['a*a*a*a*a*b', a(100_000), false],
    ['^(a|aa)+$', a(100_000) + '!', false],
    ['(x+x+)+y', 'x'.repeat(100_000), false],
    ['^(\\w+\\s?)*$', 'word '.repeat(20_000) + '!', false],
    ['(.*a){20}', a(50_000), true],
    ['(.*a){20}', a(19) + 'b'.repeat(50_000), false],
    ['^(a?){30}a{30}$', a(30), true],
  ])('%s on a %#th long name', (source, input, expected) => {
    expect(compileNamePattern(source, 'modules').test(input)).toBe(expected);
  });
});

describe('every place that matches names uses it', () => {
  // With RegExp each of these would search 2^40 ways to split the name.
  const hostile = '^(a+)+$';
  const slow = 'a'.repeat(40) + '!';
  const weight = { name: 'w', read: () => ({}) as never };
  it.each([
    ['Quantizer schedules', () => new Quantizer({ schedules: [{ startBits: 8, targetBits: 4, period: 1, modules: [hostile] }] }).scheduleFor(slow), undefined],
    ['DeepSpeed different_groups', () => Quantizer.fromDeepSpeed({
      compression_training: { weight_quantization: {
        shared_parameters: { enabled: true },
        different_groups: { g: { params: { start_bits: 8, target_bits: 4 }, modules: [hostile] } },
      } },
    }).scheduleFor(slow), undefined],
    ['the legacy form and a name that matches', () => Quantizer.fromDeepSpeed({ quantize_training: { enabled: true } }).scheduleFor(slow)?.targetBits, 8],
    ['eigenvalue layer selection', () => blocksFromModel(
      { layers: [{ name: slow, trainableWeights: [weight] }, { name: 'a'.repeat(40), trainableWeights: [weight] }] },
      { layerName: hostile, layerNum: 1 },
    ).map((block) => block.parameterNames), [['w']]],
  ])('%s', (_where, run, expected) => {
    expect(run()).toEqual(expected);
  });
});

describe('errors', () => {
  const failure = (run: () => unknown): EdgeMoqError => {
    try {
      run();
    } catch (e) {
      return e as EdgeMoqError;
    }
    throw new Error('expected a typed error');
  };
  const deep = (n: number) => '('.repeat(n) + 'a' + ')'.repeat(n);

  it.each([
    ['a backreference', '(a)\\1', /backreference "\\1" at position 3 is not supported \(it needs backtracking\)/],
    ['a named backreference', '(?<x>a)\\k<x>', /named backreference "\\k" at position 7/],
    ['a lookahead', 'a(?=b)', /lookaround "\(\?=" at position 1/],
    ['a negative lookahead', '(?!b)a', /lookaround "\(\?!" at position 0/],
    ['a lookbehind', '(?<=b)a', /lookaround "\(\?<=" at position 0/],
    ['a negative lookbehind', 'x(?<!b)a', /lookaround "\(\?<!" at position 1/],
    ['an octal escape', 'a\\012', /octal escape "\\0" at position 1/],
    ['a control escape', '\\cJ', /escape "\\c" at position 0 is not supported/],
    ['an identity escape of a letter', 'x\\a', /escape "\\a" at position 1/],
    ['a short \\x', '\\x4', /"\\x" at position 0 .*exactly 2 hex digits/],
    ['a \\u{...}', '\\u{41}', /"\\u" at position 0 .*exactly 4 hex digits/],
    ['\\B in a class', '[\\B]', /escape "\\B" at position 1/],
    ['a {m,n} that expands too far', '(a{100}){101}', new RegExp(`expands to more than ${MAX_PATTERN_PROGRAM} states`)],
    ['a huge count', 'a{99999999999}', /expands to more than/],
    ['groups nested too deep', deep(MAX_PATTERN_NESTING + 1), new RegExp(`nests groups more than ${MAX_PATTERN_NESTING} deep`)],
    ['invalid syntax', '(', /is not a valid regular expression: .*Unterminated group/],
    ['nothing to repeat', '*a', /is not a valid regular expression/],
  ])('%s is an InvalidInputError naming the argument, what and where', (_what, source, message) => {
    const error = failure(() => compileNamePattern(source, '--include'));
    expect(error).toBeInstanceOf(InvalidInputError);
    expect(error.code).toBe('INVALID_ARGUMENT');
    expect(error.message).toMatch(/^--include /);
    expect(error.message).toMatch(message);
  });

  it('accepts nesting up to the limit', () => {
    expect(compileNamePattern(deep(MAX_PATTERN_NESTING), 'x').test('a')).toBe(true);
  });

  it.each([
    ['u', /a/u], ['v', new RegExp('a', 'v')], ['u with others', /a/giu],
  ])('refuses flag %s', (_what, regexp) => {
    expect(failure(() => compileNamePattern(regexp, 'include')).message).toMatch(/has flag [uv].*supported flags: i, m, s/);
  });

  it.each([
    ['a number', 5], ['null', null], ['undefined', undefined], ['an object', { source: 'a' }], ['an array', ['a']],
    ['a Proxy of a RegExp', new Proxy(/a/, {})], ['an object made from RegExp.prototype', Object.create(RegExp.prototype)],
    ['a revoked Proxy', (() => { const { proxy, revoke } = Proxy.revocable(/a/, {}); revoke(); return proxy; })()],
  ])('%s is not a pattern', (_what, value) => {
    const error = failure(() => compileNamePattern(value as never, 'eigenvalue.layerName'));
    expect(error).toBeInstanceOf(InvalidInputError);
    expect(error.message).toMatch(/^eigenvalue\.layerName must be a regular expression \(a string or a RegExp\), got /);
  });

  it('builds the error the caller asks for', () => {
    const error = failure(() => compileNamePattern('(a)\\1', 'k', (problem) => new EdgeMoqError('CONFIG', `custom: ${problem}`)));
    expect(error.code).toBe('CONFIG');
    expect(error.message).toMatch(/^custom: "\(a\)\\\\1": backreference/);
  });

  it('refuses a name that is not a string', () => {
    expect(() => compileNamePattern('a', 'x').test(5 as never)).toThrow(/must be a string, got number/);
  });
});
