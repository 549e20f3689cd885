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
const ALPHABET = ['a', 'b', 'A', 'B', '0', '7', '_', '.', '-', ' ', '\n', '\u2028', 'µ', 'Μ', 'μ', '\u212a', 'k', 'K', 'ſ', 's', 'S', 'ß', 'é', 'É', '{', '}', ']', '/', '\t', '\ud83d'];
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
  fc.constantFrom('\\d', '\\D', '\\w', '\\W', '\\s', '\\S', '\\t', '\\-', 'a-z', 'A-Z', '0-9', '\\d-z', 'a-\\w', '-', '\\x00-\\x7f'),
);
const characterClass = fc.tuple(fc.boolean(), fc.array(classItem, { maxLength: 4 })).map(([negated, items]) => `[${negated ? '^' : ''}${items.join('')}]`);

const quantifier = fc.tuple(fc.constantFrom('*', '+', '?', '{2}', '{0,1}', '{1,}', '{0,2}', '{1,3}', '{0}'), fc.boolean()).map(([q, lazy]) => (lazy ? `${q}?` : q));

const { pattern } = fc.letrec<{ pattern: string; alternatives: string; term: string; atom: string }>((tie) => ({
  pattern: fc.oneof({ depthSize: 'small', withCrossShrink: true }, tie('alternatives'), tie('term')),
  alternatives: fc
    .array(
      fc.array(tie('term'), { maxLength: 4 }).map((terms) => terms.join('')),
      { minLength: 1, maxLength: 3 },
    )
    .map((options) => options.join('|')),
  term: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    tie('atom'),
    fc.tuple(tie('atom'), quantifier).map(([a, q]) => a + q),
    fc.constantFrom('^', '$'),
  ),
  atom: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    literal,
    fc.constantFrom('.', '\\d', '\\D', '\\w', '\\W', '\\s', '\\S', '\\t', '\\r', '{', '}', ']', '(?:)'),
    characterClass,
    fc.tuple(fc.constantFrom('(', '(?:'), tie('pattern')).map(([open, inner]) => `${open}${inner})`),
  ),
}));

const name = fc.array(fc.constantFrom(...ALPHABET), { maxLength: 12 }).map((units) => units.join(''));
const flags = fc.subarray(['d', 'g', 'i', 'y']).map((f) => f.join(''));

describe('compileNamePattern agrees with RegExp.prototype.test', () => {
  it('on generated patterns of the supported subset, every flag combination, and names around them', () => {
    fc.assert(
      fc.property(pattern, flags, fc.array(name, { minLength: 1, maxLength: 8 }), (source, f, names) => {
        let native: RegExp;
        try {
          native = new RegExp(source, f.replace(/[dgy]/g, ''));
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
      }),
      { numRuns: fuzzRuns(3000), seed: FUZZ_SEED },
    );
  });

  it.each([
    ['layer\\.\\d+\\.attention', '', ['bert.layer.11.attention.self.query.weight', 'layer.x.attention', 'layerX1.attention'], [true, false, false]],
    ['^encoder_\\d/kernel$', '', ['encoder_0/kernel', 'encoder_10/kernel', 'x/encoder_0/kernel'], [true, false, false]],
    ['(?:query|key|value)\\.weight', '', ['attn.key.weight', 'attn.keys.weight'], [true, false]],
    ['(dense)_\\d{1,2}', '', ['dense_12', 'dense_'], [true, false]],
    ['ATTENTION', 'i', ['bert.attention.self', 'attentio'], [true, false]],
    ['[^\\W_]BIAS$', 'i', ['fc1bias', 'fc_bias', 'fc1.bias'], [true, false, false]],
    ['a.b', '', ['a\nb', 'a\u2028b', 'a\tb'], [false, false, true]],
    ['\\u00b5|\\xb5', 'i', ['\u039c', '\u03bc', 'm', 'M'], [true, true, false, false]],
    ['[\\u212a]|\\u017f', 'i', ['k', 'K', 's', 'S', '\u212a', '\u017f'], [false, false, false, false, true, true]],
    ['[^\\u03c3]', 'i', ['\u03a3', '\u03c2', 'x'], [false, false, true]],
    ['^\\/\\r\\n$', '', ['/\r\n'], [true]],
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
      override get source(): string {
        return 'x';
      }
      override get flags(): string {
        return 'i';
      }
    }
    const compiled = compileNamePattern(new Lying('a'), 'include');
    expect([compiled.source, compiled.flags, compiled.test('a'), compiled.test('x'), compiled.test('A')]).toEqual(['a', '', true, false, false]);
    class LyingFlags extends RegExp {
      override get ignoreCase(): boolean {
        return false;
      }
      override get multiline(): boolean {
        return true;
      }
    }
    const folded = compileNamePattern(new LyingFlags('a', 'i'), 'include');
    expect([folded.flags, folded.test('A')]).toEqual(['i', true]);
  });
});

describe('flag i agrees with RegExp on every UTF-16 code unit', () => {
  const unit = (code: number) => String.fromCharCode(code);
  const escaped = (code: number) => `\\u${hex(code, 4)}`;
  /** The units of `codes` on which the compiled /source/i answers otherwise than RegExp. */
  const disagreements = (source: string, codes: Iterable<number>) => {
    const native = new RegExp(source, 'i');
    const compiled = compileNamePattern(native, 'pattern');
    return [...codes].filter((code) => compiled.test(unit(code)) !== native.test(unit(code))).map((code) => `/${source}/i on ${escaped(code)}`);
  };
  const everyUnit = Array.from({ length: 0x10000 }, (_, code) => code);

  it('a unit matches the units RegExp matches it with', () => {
    // RegExp compares canonical units: a unit's own or its upper case. So two units can match
    // only when one is the other's upper case or both have the same upper case, and these
    // candidates are all the units that can match.
    const byUpper = new Map<string, number[]>();
    for (const code of everyUnit) {
      const upper = unit(code).toUpperCase();
      byUpper.set(upper, [...(byUpper.get(upper) ?? []), code]);
    }
    const wrong: string[] = [];
    for (const code of everyUnit) {
      const upper = unit(code).toUpperCase();
      const candidates = [code, ...byUpper.get(upper)!, ...(byUpper.get(unit(code)) ?? []), ...(upper.length === 1 ? [upper.charCodeAt(0)] : [])];
      wrong.push(...disagreements(`^${escaped(code)}$`, candidates));
    }
    expect(wrong).toEqual([]);
  });

  it('classes and negated classes of 4,096 units match what they do with RegExp', () => {
    const wrong: string[] = [];
    for (let low = 0; low < 0x10000; low += 0x1000) {
      wrong.push(...disagreements(`^[${escaped(low)}-${escaped(low + 0xfff)}]$`, everyUnit));
      wrong.push(...disagreements(`^[^${escaped(low)}-${escaped(low + 0xfff)}]$`, everyUnit));
    }
    expect(wrong).toEqual([]);
  });
});

describe('patterns that make a backtracking engine blow up', () => {
  // Each takes seconds (at 25-30 characters) to longer than a lifetime with RegExp; here every
  // one is linear in the name: the answers are asserted, the times are in bench/ (README).
  const a = (n: number) => 'a'.repeat(n);
  it.each([
    ['^(a+)+$', `${a(31)}b`, false],
    ['^(a+)+$', a(100_000), true],
    ['(a|a)*b', a(100_000), false],
    ['(a*)*b', a(100_000), false],
    ['a*a*a*a*a*b', a(100_000), false],
    ['^(a|aa)+$', `${a(100_000)}!`, false],
    ['(x+x+)+y', 'x'.repeat(100_000), false],
    ['^(\\w+\\s?)*$', `${'word '.repeat(20_000)}!`, false],
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
  const slow = `${'a'.repeat(40)}!`;
  const weight = { name: 'w', read: () => ({}) as never };
  it.each([
    ['Quantizer schedules', () => new Quantizer({ schedules: [{ startBits: 8, targetBits: 4, period: 1, modules: [hostile] }] }).scheduleFor(slow), undefined],
    [
      'DeepSpeed different_groups',
      () =>
        Quantizer.fromDeepSpeed({
          compression_training: {
            weight_quantization: {
              shared_parameters: { enabled: true },
              different_groups: { g: { params: { start_bits: 8, target_bits: 4 }, modules: [hostile] } },
            },
          },
        }).scheduleFor(slow),
      undefined,
    ],
    ['the legacy form and a name that matches', () => Quantizer.fromDeepSpeed({ quantize_training: { enabled: true } }).scheduleFor(slow)?.targetBits, 8],
    [
      'eigenvalue layer selection',
      () =>
        blocksFromModel(
          {
            layers: [
              { name: slow, trainableWeights: [weight] },
              { name: 'a'.repeat(40), trainableWeights: [weight] },
            ],
          },
          { layerName: hostile, layerNum: 1 },
        ).map((block) => block.parameterNames),
      [['w']],
    ],
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
  const deep = (n: number) => `${'('.repeat(n)}a${')'.repeat(n)}`;

  it.each([
    ['a backreference', '(a)\\1', /backreference "\\1" at position 3 is not supported \(it needs backtracking\)/],
    ['a named backreference', '(a)\\k<x>', /backreference "\\k" at position 3 .*it needs backtracking/],
    ['a named group', 'x(?<part>a)', /group "\(\?<" at position 1 is not supported \(.*named groups are not supported\)/],
    ['a lookahead', 'a(?=b)', /group "\(\?=" at position 1 is not supported \(lookaround needs backtracking/],
    ['a negative lookahead', '(?!b)a', /group "\(\?!" at position 0 .*lookaround needs backtracking/],
    ['a lookbehind', '(?<=b)a', /group "\(\?<" at position 0 .*lookaround needs backtracking/],
    ['an octal escape', 'a\\012', /escape "\\0" at position 1 is not supported/],
    ['a control escape', '\\cJ', /escape "\\c" at position 0 is not supported/],
    ['an identity escape of a letter', 'x\\a', /escape "\\a" at position 1/],
    ['a word boundary', 'fc\\.bias\\b', /escape "\\b" at position 8 is not supported/],
    ['a non-boundary', '\\Bx', /escape "\\B" at position 0/],
    ['\\v and \\f', 'a[\\v\\f]', /escape "\\v" at position 2/],
    ['a short \\x', '\\x4', /escape "\\x" at position 0 is not supported .*\\xHH/],
    ['a \\u{...}', '\\u{41}', /escape "\\u" at position 0 is not supported .*\\uHHHH/],
    ['\\X, which is no hex escape', '\\X41', /escape "\\X" at position 0/],
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

  // biome-ignore lint/complexity/useRegexLiterals: a v-flag literal needs an ES2024 target; the constructor builds one.
  const vFlag = new RegExp('a', 'v');
  it.each([
    ['u', /a/u, 'u'],
    ['v', vFlag, 'v'],
    ['u with others', /a/giu, 'u'],
    ['m', /^a/m, 'm'],
    ['s', /a.b/s, 's'],
    ['m and s', /a/gims, 'm, s'],
  ])('refuses flag %s', (_what, regexp, named) => {
    expect(failure(() => compileNamePattern(regexp, 'include')).message).toMatch(new RegExp(`has flag ${named}, which is not supported; supported flags: i \\(g, y and d are ignored`));
  });

  it.each([
    ['a number', 5],
    ['null', null],
    ['undefined', undefined],
    ['an object', { source: 'a' }],
    ['an array', ['a']],
    ['a Proxy of a RegExp', new Proxy(/a/, {})],
    ['an object made from RegExp.prototype', Object.create(RegExp.prototype)],
    [
      'a revoked Proxy',
      (() => {
        const { proxy, revoke } = Proxy.revocable(/a/, {});
        revoke();
        return proxy;
      })(),
    ],
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
