// The command line's parsing, in-process (runCommandLine is what the binary runs): which argument
// vectors run, and the exit status and message of those that don't. Every refused vector is
// refused before any work, so no output appears.

import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { integerFlag, parseArgs } from '../src/cli/args.js';
import { COMMANDS } from '../src/cli/commands.js';
import { encodeFloat32, encodeSafetensors } from '../src/formats/safetensors.js';
import { runCli } from './support/cli.js';
import { randomTensor } from './support/fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'edge-moq-cli-args-'));
const input = join(dir, 'model.safetensors');

beforeAll(() => {
  writeFileSync(input, encodeSafetensors([{ name: 'w', dtype: 'F32', shape: [8, 16], data: encodeFloat32(randomTensor(128, 1), 'F32') }]));
});
afterEach(() => vi.restoreAllMocks());

const run = runCli;

let outputs = 0;
/** IN is the model, OUT (and OUT2) fresh output paths, wherever they appear in an argument. */
function resolve(argv: readonly string[]): { argv: string[]; outputs: string[] } {
  const out = [join(dir, `out-${outputs}.safetensors`), join(dir, `out-${outputs}b.safetensors`)];
  outputs++;
  const paths = new Map([
    ['IN', input],
    ['OUT', out[0]!],
    ['OUT2', out[1]!],
  ]);
  return { argv: argv.map((a) => a.replace(/\b(IN|OUT2?)\b/g, (p) => paths.get(p)!)), outputs: out };
}

const quantize = (...rest: string[]) => ['quantize', 'IN', '-o', 'OUT', ...rest];
const HOSTILE_INTEGERS = ['0x4', '1e1', ' 4', '4 ', '4.0', '+4', '0b100', '0o4', '４', '٤', '4\n', 'Infinity', 'NaN', '4_0', '-0x1'];

describe('refused argument vectors: exit 2, a message naming the problem, nothing written', () => {
  const cases: [string, readonly string[], RegExp][] = [
    ...['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf', 'isPrototypeOf', 'frobnicate'].map(
      (name) => [`command ${name}`, [name, 'IN'], new RegExp(`unknown command "${name}"`)] as [string, string[], RegExp],
    ),
    ...HOSTILE_INTEGERS.map((value) => [`--bits ${JSON.stringify(value)}`, quantize('--bits', value), /--bits must be an integer >= 1 in decimal digits, got "/] as [string, string[], RegExp]),
    ['--seed 1e3', quantize('--bits', '4', '--seed', '1e3'), /--seed must be an integer >= 0 in decimal digits, got "1e3"/],
    ['--seed -1', quantize('--bits', '4', '--seed', '-1'), /--seed must be an integer >= 0/],
    ['--seed too large', quantize('--bits', '4', '--seed', '99999999999999999999'), /--seed 99999999999999999999 is too large/],
    ['--group-size 0x10', quantize('--bits', '4', '--group-size', '0x10'), /--group-size must be an integer >= 1/],
    ['--seed= (empty)', quantize('--bits', '4', '--seed='), /--seed needs a value, got an empty one/],
    ['--seed "" (empty)', quantize('--bits', '4', '--seed', ''), /--seed needs a value, got an empty one/],
    ['-o "" (empty)', ['quantize', 'IN', '-o', '', '--bits', '4'], /-o needs a value, got an empty one/],
    ['--bits at the end', quantize('--bits'), /--bits needs a value\.$/m],
    ['-o followed by an option', ['quantize', 'IN', '-o', '--bits', '4'], /-o needs a value, got the option --bits; if that is the value, write --output=--bits/],
    ['-o and --output', quantize('--output', 'OUT2', '--bits', '4'), /-o and --output are the same option; give it once/],
    ['--output and -o', ['quantize', 'IN', '--output', 'OUT', '-o', 'OUT2', '--bits', '4'], /--output and -o are the same option/],
    ['-o twice', quantize('-o', 'OUT2', '--bits', '4'), /-o is given twice; give it once/],
    ['--bits twice', quantize('--bits', '4', '--bits=8'), /--bits is given twice/],
    ['--include-vectors twice', quantize('--bits', '4', '--include-vectors', '--include-vectors'), /--include-vectors is given twice/],
    ['--include-vectors=yes', quantize('--bits', '4', '--include-vectors=yes'), /--include-vectors takes no value, got --include-vectors=yes/],
    ['--quiet=1', quantize('--bits', '4', '--quiet=1'), /--quiet takes no value/],
    ['--help=yes', ['quantize', '--help=yes'], /--help takes no value/],
    ['unknown option', quantize('--bits', '4', '--frobnicate'), /unknown option --frobnicate; options here: -o\/--output, --bits, .*--include-vectors, --quiet, -h\/--help\./],
    ['single-dash word', quantize('-bits', '4'), /unknown option -bits/],
    ['short option with =', ['quantize', 'IN', '-o=OUT', '--bits', '4'], /unknown option -o=/],
    ['--o is not -o', quantize('--o', 'OUT2', '--bits', '4'), /unknown option --o;/],
    ['dequantize -o and --output', ['dequantize', 'IN', '-o', 'OUT', '--output', 'OUT2'], /-o and --output are the same option/],
    ['inspect --quiet', ['inspect', 'IN', '--quiet'], /unknown option --quiet; options here: -h\/--help/],
    ['demo --steps 1e3', ['demo', '--steps', '1e3'], /--steps must be an integer >= 1 in decimal digits, got "1e3"/],
    ['demo --seed=', ['demo', '--seed='], /--seed needs a value, got an empty one/],
    ['demo --report ""', ['demo', '--report', ''], /--report needs a value, got an empty one/],
    ['demo with a file argument', ['demo', 'extra\x1b[2J.txt'], /demo takes no file arguments, got "extra\\u001b\[2J\.txt"/],
    ['demo --eigenvalues=no', ['demo', '--eigenvalues=no'], /--eigenvalues takes no value/],
    ['demo --backend twice', ['demo', '--backend', 'wasm', '--backend', 'wasm'], /--backend is given twice/],
  ];

  it.each(cases)('%s', async (_, argv, message) => {
    const { argv: full, outputs: paths } = resolve(argv);
    const { code, stdout, stderr } = await run(full);
    expect(stderr).toMatch(message);
    expect(stderr).toMatch(/^edge-moq: /);
    expect(stdout).toBe('');
    expect(code).toBe(2);
    for (const path of paths) expect(existsSync(path)).toBe(false);
  });
});

describe('accepted argument vectors', () => {
  it.each([
    ['-o', quantize('--bits', '4')],
    ['--output', ['quantize', 'IN', '--output', 'OUT', '--bits', '4']],
    ['--output=', ['quantize', 'IN', '--output=OUT', '--bits=4']],
    ['leading zeros are still decimal', quantize('--bits', '04', '--seed', '007')],
    ['a value that starts with a dash, given with =', quantize('--bits', '4', '--exclude=-nothing')],
  ])('%s', async (_, argv) => {
    const {
      argv: full,
      outputs: [output],
    } = resolve(argv);
    const { code, stderr } = await run(full);
    expect(stderr).not.toMatch(/^edge-moq: /m);
    expect(code).toBe(0);
    expect(existsSync(output!)).toBe(true);
  });

  it.each([[[]], [['--help']], [['-h']], [['help']], [['quantize', '--help']], [['inspect', '-h']], [['demo', '--bits', '4', '--help']]])('prints the usage for %j', async (argv) => {
    const { code, stdout } = await run(argv);
    expect(stdout).toMatch(/^edge-moq — DeepSpeed MoQ quantization/);
    expect(code).toBe(argv.length === 0 ? 2 : 0);
  });

  it('reads an option under its long name whichever name was given', () => {
    for (const argv of [
      ['x', '-o', 'y'],
      ['x', '--output', 'y'],
      ['x', '--output=y'],
    ]) {
      const args = parseArgs(argv, COMMANDS.quantize);
      expect([...args.flags]).toEqual([['output', 'y']]);
      expect(args.positionals).toEqual(['x']);
    }
  });

  it('takes integers in decimal digits only', () => {
    const integer = (value: string) => integerFlag(parseArgs(['--seed', value], COMMANDS.quantize), 'seed', 0);
    expect(integer('0')).toBe(0);
    expect(integer('4294967295')).toBe(4294967295);
    expect(integer('0012')).toBe(12);
    for (const value of HOSTILE_INTEGERS) expect(() => integer(value), value).toThrow(/--seed must be an integer >= 0 in decimal digits/);
  });

  it('left no output behind for a refused vector', () => {
    expect(readdirSync(dir).filter((f) => f.includes('.partial-'))).toEqual([]);
  });
});
