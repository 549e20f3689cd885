// Fuzzing the command line: random argument vectors for quantize, dequantize and inspect, run
// in-process (the same functions the binary calls). Each must succeed or throw an EdgeMoqError
// with a message; never another error, and never leave a partial or half-written output.

import fc from 'fast-check';
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { parseArgs } from '../src/cli/args.js';
import { dequantizeCommand } from '../src/cli/dequantize.js';
import { inspectCommand } from '../src/cli/inspect.js';
import { quantizeCommand } from '../src/cli/quantize.js';
import { EdgeMoqError } from '../src/errors.js';
import { encodeFloat32, encodeSafetensors } from '../src/formats/safetensors.js';
import { randomTensor } from './support/fixtures.js';
import { FUZZ_SEED, FUZZ_TIMEOUT_MS, fuzzRuns } from './support/fuzz.js';

const dir = mkdtempSync(join(tmpdir(), 'edge-moq-fuzz-cli-'));
const model = join(dir, 'model.safetensors');
const packed = join(dir, 'packed.safetensors');

const COMMANDS = {
  quantize: { run: quantizeCommand, values: ['o', 'output', 'bits', 'group-size', 'groups', 'type', 'rounding', 'seed', 'include', 'exclude', 'backend'], booleans: ['include-vectors'] },
  dequantize: { run: dequantizeCommand, values: ['o', 'output', 'dtype', 'backend'], booleans: [] },
  inspect: { run: inspectCommand, values: [], booleans: [] },
} as const;

beforeAll(async () => {
  writeFileSync(model, encodeSafetensors([
    { name: 'w', dtype: 'F32', shape: [16, 12], data: encodeFloat32(randomTensor(192, 1), 'F32') },
    { name: 'b', dtype: 'F16', shape: [12], data: encodeFloat32(randomTensor(12, 2), 'F16') },
  ]));
  writeFileSync(join(dir, 'garbage.safetensors'), new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9]));
  writeFileSync(join(dir, 'empty.safetensors'), new Uint8Array(0));
  vi.spyOn(console, 'log').mockImplementation(() => undefined);
  vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
  await quantizeCommand(parseArgs([model, '-o', packed, '--bits', '4'], COMMANDS.quantize.values, COMMANDS.quantize.booleans));
});
afterAll(() => vi.restoreAllMocks());

const inputs = fc.constantFrom(model, packed, join(dir, 'garbage.safetensors'), join(dir, 'empty.safetensors'), join(dir, 'missing.safetensors'), dir);
const values = fc.constantFrom('4', '1', '2', '3', '8', '16', '0', '17', '-1', '4.5', 'abc', '', '1e3', '12', '6', '192', 'symmetric', 'asymmetric',
  'stochastic', 'nearest', 'F32', 'F16', 'BF16', 'original', 'wasm', 'wasm-simd', 'auto', 'tpu', '(', '.*', 'w', '^b$', '--bits');
const flag = fc.oneof(
  fc.constantFrom('--bits', '--group-size', '--groups', '--type', '--rounding', '--seed', '--include', '--exclude', '--backend', '--dtype',
    '--include-vectors', '--frobnicate', '-x', '-o'),
  fc.constantFrom('--bits=3', '--group-size=4', '--type=asymmetric', '--rounding=stochastic', '--dtype=F16'),
);
// Free-form vectors find parser and validation gaps; well-formed ones with random values reach
// the file code (and its failures) much more often.
const freeForm = fc.tuple(
  fc.constantFrom('quantize', 'dequantize', 'inspect') as fc.Arbitrary<keyof typeof COMMANDS>,
  fc.array(fc.oneof({ weight: 2, arbitrary: inputs }, { weight: 4, arbitrary: flag }, { weight: 4, arbitrary: values }), { maxLength: 9 }),
  fc.boolean(),
);
const option = (name: string, choices: string[]) => fc.option(fc.constantFrom(...choices).map((v) => [name, v]), { nil: [] as string[] });
const wellFormed = fc.oneof(
  fc.tuple(inputs, option('--bits', ['1', '2', '3', '4', '8', '16', '0']), option('--group-size', ['1', '4', '12', '5', '192']),
    option('--groups', ['1', '2', '7']), option('--type', ['symmetric', 'asymmetric']), option('--rounding', ['nearest', 'stochastic']),
    option('--seed', ['0', '9']), option('--include', ['w', '.*', 'nothing']), option('--exclude', ['b', 'w']),
    fc.constantFrom([], ['--include-vectors']))
    .map(([input, ...rest]) => ['quantize', [input, ...rest.flat()], true] as const),
  fc.tuple(inputs, option('--dtype', ['original', 'F32', 'F16', 'BF16', 'F64'])).map(([input, dtype]) => ['dequantize', [input, ...dtype], true] as const),
  inputs.map((input) => ['inspect', [input], false] as const),
);
const argv = fc.oneof(freeForm, wellFormed) as fc.Arbitrary<readonly [keyof typeof COMMANDS, readonly string[], boolean]>;

it('answers every argument vector with success or a typed error, and never leaves a partial file', async () => {
  const outcomes = new Map<string, number>();
  let run = 0;
  await fc.assert(fc.asyncProperty(argv, async ([command, args, withOutput]) => {
    const output = join(dir, `out-${run++}.safetensors`);
    const full = withOutput && command !== 'inspect' ? [...args, '-o', output] : args;
    let outcome = 'ok';
    try {
      const spec = COMMANDS[command];
      await spec.run(parseArgs(full, spec.values, spec.booleans));
    } catch (error) {
      if (!(error instanceof EdgeMoqError) || error.message.length === 0) {
        throw new Error(`edge-moq ${command} ${full.join(' ')} threw ${String(error)}`);
      }
      outcome = error.code;
      expect(existsSync(output), `${command} ${full.join(' ')} failed but left ${output}`).toBe(false);
    }
    outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    expect(readdirSync(dir).filter((f) => f.includes('.partial-'))).toEqual([]);
  }), { numRuns: fuzzRuns(300), seed: FUZZ_SEED });
  console.info(`CLI fuzz: ${run} runs, ${[...outcomes].map(([k, v]) => `${k} ${v}`).join(', ')}`);
  expect(outcomes.get('ok') ?? 0).toBeGreaterThan(20);
}, FUZZ_TIMEOUT_MS);
