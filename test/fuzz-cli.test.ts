// Fuzzing the command line: random argument vectors for quantize, dequantize and inspect, run
// in-process (the same functions the binary calls). Each must succeed or throw an EdgeMoqError
// with a message; never another error, and never leave a partial or half-written output. Then
// the parser's own classes: command names that are Object.prototype members, options given
// twice or under two names, and numbers that JavaScript reads but a user did not mean.

import fc from 'fast-check';
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { integerFlag, parseArgs } from '../src/cli/args.js';
import { COMMANDS, runCommandLine } from '../src/cli/commands.js';
import { EdgeMoqError, InvalidInputError } from '../src/errors.js';
import { encodeFloat32, encodeSafetensors } from '../src/formats/safetensors.js';
import { randomTensor } from './support/fixtures.js';
import { FUZZ_SEED, FUZZ_TIMEOUT_MS, fuzzRuns } from './support/fuzz.js';

const dir = mkdtempSync(join(tmpdir(), 'edge-moq-fuzz-cli-'));
const model = join(dir, 'model.safetensors');
const packed = join(dir, 'packed.safetensors');

type FileCommand = 'quantize' | 'dequantize' | 'inspect';

beforeAll(async () => {
  writeFileSync(
    model,
    encodeSafetensors([
      { name: 'w', dtype: 'F32', shape: [16, 12], data: encodeFloat32(randomTensor(192, 1), 'F32') },
      { name: 'b', dtype: 'F16', shape: [12], data: encodeFloat32(randomTensor(12, 2), 'F16') },
    ]),
  );
  writeFileSync(join(dir, 'garbage.safetensors'), new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9]));
  writeFileSync(join(dir, 'empty.safetensors'), new Uint8Array(0));
  vi.spyOn(console, 'log').mockImplementation(() => undefined);
  vi.spyOn(console, 'error').mockImplementation(() => undefined);
  vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
  await COMMANDS.quantize.run(parseArgs([model, '-o', packed, '--bits', '4'], COMMANDS.quantize));
});
afterAll(() => vi.restoreAllMocks());

const inputs = fc.constantFrom(model, packed, join(dir, 'garbage.safetensors'), join(dir, 'empty.safetensors'), join(dir, 'missing.safetensors'), dir);
/** Strings Number() reads as a number that no user writes for one. */
const HOSTILE_NUMBERS = ['0x4', '1e1', ' 4', '4 ', '4.0', '+4', '0b100', '0o4', '４', '٤', '4\n', 'Infinity', '-0', '4_0', '99999999999999999999', '\t8'];
const values = fc.constantFrom(
  '4',
  '1',
  '2',
  '3',
  '8',
  '16',
  '0',
  '17',
  '-1',
  '4.5',
  'abc',
  '',
  '1e3',
  '12',
  '6',
  '192',
  'symmetric',
  'asymmetric',
  'stochastic',
  'nearest',
  'F32',
  'F16',
  'BF16',
  'original',
  'wasm',
  'wasm-simd',
  'auto',
  'tpu',
  '(',
  '.*',
  'w',
  '^b$',
  '--bits',
  ...HOSTILE_NUMBERS,
);
const flag = fc.oneof(
  fc.constantFrom(
    '--bits',
    '--group-size',
    '--groups',
    '--type',
    '--rounding',
    '--seed',
    '--include',
    '--exclude',
    '--backend',
    '--dtype',
    '--include-vectors',
    '--quiet',
    '--frobnicate',
    '-x',
    '-o',
    '--output',
    '--help',
  ),
  fc.constantFrom('--bits=3', '--group-size=4', '--type=asymmetric', '--rounding=stochastic', '--dtype=F16', '--seed=', '--bits=0x4', '--include-vectors=yes', '--quiet=1'),
);
// Free-form vectors find parser and validation gaps; well-formed ones with random values reach
// the file code (and its failures) much more often.
const freeForm = fc.tuple(
  fc.constantFrom('quantize', 'dequantize', 'inspect') as fc.Arbitrary<FileCommand>,
  fc.array(fc.oneof({ weight: 2, arbitrary: inputs }, { weight: 4, arbitrary: flag }, { weight: 4, arbitrary: values }), { maxLength: 9 }),
  fc.boolean(),
);
const option = (name: string, choices: string[]) =>
  fc.option(
    fc.constantFrom(...choices).map((v) => [name, v]),
    { nil: [] as string[] },
  );
const wellFormed = fc.oneof(
  fc
    .tuple(
      inputs,
      option('--bits', ['1', '2', '3', '4', '8', '16', '0']),
      option('--group-size', ['1', '4', '12', '5', '192']),
      option('--groups', ['1', '2', '7']),
      option('--type', ['symmetric', 'asymmetric']),
      option('--rounding', ['nearest', 'stochastic']),
      option('--seed', ['0', '9']),
      option('--include', ['w', '.*', 'nothing']),
      option('--exclude', ['b', 'w']),
      fc.constantFrom([], ['--include-vectors']),
    )
    .map(([input, ...rest]) => ['quantize', [input, ...rest.flat()], true] as const),
  fc.tuple(inputs, option('--dtype', ['original', 'F32', 'F16', 'BF16', 'F64'])).map(([input, dtype]) => ['dequantize', [input, ...dtype], true] as const),
  inputs.map((input) => ['inspect', [input], false] as const),
);
const argv = fc.oneof(freeForm, wellFormed) as fc.Arbitrary<readonly [FileCommand, readonly string[], boolean]>;

it(
  'answers every argument vector with success or a typed error, and never leaves a partial file',
  async () => {
    const outcomes = new Map<string, number>();
    let run = 0;
    await fc.assert(
      fc.asyncProperty(argv, async ([command, args, withOutput]) => {
        const output = join(dir, `out-${run++}.safetensors`);
        const full = withOutput && command !== 'inspect' ? [...args, '-o', output] : args;
        let outcome = 'ok';
        try {
          const spec = COMMANDS[command];
          await spec.run(parseArgs(full, spec));
        } catch (error) {
          if (!(error instanceof EdgeMoqError) || error.message.length === 0) {
            throw new Error(`edge-moq ${command} ${full.join(' ')} threw ${String(error)}`);
          }
          outcome = error.code;
          // The arguments are wrong, a file is damaged, or one is not there: nothing else may fail.
          expect(['INVALID_ARGUMENT', 'MALFORMED_FILE', 'IO'], `${command} ${full.join(' ')}: ${error.message}`).toContain(outcome);
          expect(existsSync(output), `${command} ${full.join(' ')} failed but left ${output}`).toBe(false);
        }
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
        expect(readdirSync(dir).filter((f) => f.includes('.partial-'))).toEqual([]);
      }),
      { numRuns: fuzzRuns(300), seed: FUZZ_SEED },
    );
    console.info(`CLI fuzz: ${run} runs, ${[...outcomes].map(([k, v]) => `${k} ${v}`).join(', ')}`);
    expect(outcomes.get('ok') ?? 0).toBeGreaterThan(20);
    for (const code of ['INVALID_ARGUMENT', 'MALFORMED_FILE', 'IO']) expect(outcomes.get(code), code).toBeGreaterThan(0);
  },
  FUZZ_TIMEOUT_MS,
);

it(
  'answers a command name that is not a command, Object.prototype members included, with "unknown command" and status 2',
  async () => {
    const members = [...Object.getOwnPropertyNames(Object.prototype), '__proto__', 'prototype', 'then'];
    const name = fc.oneof(fc.constantFrom(...members), fc.string({ minLength: 1, unit: 'binary' })).filter((n) => !Object.hasOwn(COMMANDS, n) && !['help', '--help', '-h'].includes(n));
    await fc.assert(
      fc.asyncProperty(name, fc.array(fc.oneof(flag, values), { maxLength: 3 }), async (command, rest) => {
        let printed = '';
        const spy = vi.spyOn(console, 'error').mockImplementation((text: unknown) => {
          printed += String(text);
        });
        try {
          expect(await runCommandLine([command, ...rest])).toBe(2);
        } finally {
          spy.mockRestore();
        }
        expect(printed).toMatch(/^edge-moq: unknown command "/);
        expect(printed.split('\n')[0]).not.toMatch(/[\p{Cc}\p{Cf}]/u);
      }),
      { numRuns: fuzzRuns(300), seed: FUZZ_SEED },
    );
  },
  FUZZ_TIMEOUT_MS,
);

it('refuses an option given twice, under one name or two, and names it', () => {
  const specs = Object.entries(COMMANDS).filter(([, spec]) => spec.values.length > 0);
  const repeated = fc.constantFrom(...specs).chain(([command, spec]) => {
    const booleans: readonly string[] = 'booleans' in spec ? spec.booleans : [];
    const aliases: Readonly<Record<string, string>> = 'aliases' in spec ? spec.aliases : {};
    const spellings = (name: string) => [
      `--${name}`,
      ...Object.entries(aliases)
        .filter(([, long]) => long === name)
        .map(([alias]) => `-${alias}`),
    ];
    const written = (spelling: string, value: string, inline: boolean) =>
      booleans.includes(spelling.replace(/^--?/, '')) || booleans.includes(aliases[spelling.replace(/^-/, '')] ?? '')
        ? [spelling]
        : inline && spelling.startsWith('--')
          ? [`${spelling}=${value}`]
          : [spelling, value];
    return fc
      .constantFrom(...spec.values, ...booleans)
      .chain((name) =>
        fc.record({
          command: fc.constant(command),
          spec: fc.constant(spec),
          first: fc.constantFrom(...spellings(name)),
          second: fc.constantFrom(...spellings(name)),
          values: fc.tuple(fc.constantFrom('4', 'x.safetensors', 'wasm'), fc.constantFrom('8', 'y.safetensors', 'auto')),
          inline: fc.tuple(fc.boolean(), fc.boolean()),
          between: fc.constantFrom(
            [],
            ['in.safetensors'],
            ['--bits', '4'].filter(() => name !== 'bits' && (spec.values as readonly string[]).includes('bits')),
          ),
        }),
      )
      .map((c) => ({ ...c, argv: [...written(c.first, c.values[0], c.inline[0]), ...c.between, ...written(c.second, c.values[1], c.inline[1])] }));
  });
  fc.assert(
    fc.property(repeated, ({ spec, first, second, argv }) => {
      let error: unknown;
      try {
        parseArgs(argv, spec);
      } catch (e) {
        error = e;
      }
      expect(error, argv.join(' ')).toBeInstanceOf(InvalidInputError);
      const message = (error as Error).message;
      expect(message).toContain(second);
      expect(message).toMatch(first === second ? /is given twice; give it once\.$/ : new RegExp(`^${first} and ${second} are the same option`));
    }),
    { numRuns: fuzzRuns(500), seed: FUZZ_SEED },
  );
});

it('reads integers written in decimal digits and refuses every other string', () => {
  const text = fc
    .oneof(
      fc.constantFrom(...HOSTILE_NUMBERS),
      fc.string({ unit: 'binary' }),
      fc.nat().map(String),
      fc.tuple(fc.constantFrom('0', '00', ' ', '+', '-', '0x', '.', 'e'), fc.nat()).map(([prefix, n]) => `${prefix}${n}`),
      fc.bigInt({ min: 0n, max: 1n << 64n }).map(String),
    )
    .filter((v) => v !== '');
  fc.assert(
    fc.property(text, (value) => {
      let read: number | undefined;
      try {
        read = integerFlag(parseArgs([`--seed=${value}`], COMMANDS.quantize), 'seed', -1);
      } catch (error) {
        expect(error, JSON.stringify(value)).toBeInstanceOf(InvalidInputError);
      }
      const digitsOnly = /^[0-9]+$/.test(value);
      if (read === undefined) expect(digitsOnly && BigInt(value) <= BigInt(Number.MAX_SAFE_INTEGER), JSON.stringify(value)).toBe(false);
      else expect(digitsOnly && BigInt(value) === BigInt(read), JSON.stringify(value)).toBe(true);
    }),
    { numRuns: fuzzRuns(2000), seed: FUZZ_SEED },
  );
});
