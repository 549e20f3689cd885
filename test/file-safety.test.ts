// The ends of a file command, as a careless or hostile user meets them: outputs that are not
// regular files, outputs that are the input, symlinks, permission bits, inputs that are not
// regular files. Everything is refused before any work, with an IO error that says why, and
// leaves every file as it was.

import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, linkSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { runCommandLine } from '../src/cli/commands.js';
import { atomicFileSink, checkOutputFile, fileSource, removePartialOutputs } from '../src/formats/node-file.js';
import { quantizeSafetensors } from '../src/formats/quantize-file.js';
import { encodeFloat32, encodeSafetensors } from '../src/formats/safetensors.js';
import fc from 'fast-check';
import { runCli } from './support/cli.js';
import { randomTensor } from './support/fixtures.js';
import { useWasmSimdPacker } from './support/packers.js';
import { FUZZ_SEED, FUZZ_TIMEOUT_MS, fuzzRuns } from './support/fuzz.js';

const wasm = useWasmSimdPacker();

const MODEL = encodeSafetensors([{ name: 'w', dtype: 'F32', shape: [16, 32], data: encodeFloat32(randomTensor(512, 7), 'F32') }]);

/** A fresh folder holding model.safetensors. */
function folder(): { dir: string; input: string } {
  const dir = mkdtempSync(join(tmpdir(), 'edge-moq-safety-'));
  const input = join(dir, 'model.safetensors');
  writeFileSync(input, MODEL);
  return { dir, input };
}

const partials = (dir: string) => readdirSync(dir).filter((name) => name.includes('.partial-'));

/** Quantizes `input` into `output` as the CLI does: both ends checked first. */
async function quantizeFile(input: string, output: string): Promise<void> {
  const source = await fileSource(input);
  try {
    await checkOutputFile(output, { distinctFrom: [source] });
    await quantizeSafetensors(source, atomicFileSink(output, { distinctFrom: [source] }), wasm.packer, { bits: 4 });
  } finally {
    await source.close();
  }
}

describe('outputs that must be refused before any work', () => {
  const cases: [string, (dir: string, input: string) => string, RegExp][] = [
    ['the input itself', (_, input) => input, /is the input .*model\.safetensors \(the same file\)/],
    [
      'a symlink to the input',
      (dir, input) => {
        symlinkSync(input, join(dir, 'link'));
        return join(dir, 'link');
      },
      /is the input/,
    ],
    [
      'a hard link to the input',
      (dir, input) => {
        linkSync(input, join(dir, 'hard'));
        return join(dir, 'hard');
      },
      /is the input/,
    ],
    [
      'a FIFO',
      (dir) => {
        execFileSync('mkfifo', [join(dir, 'fifo')]);
        return join(dir, 'fifo');
      },
      /is a FIFO .*writes only regular files/,
    ],
    [
      'a directory',
      (dir) => {
        mkdirSync(join(dir, 'sub'));
        return join(dir, 'sub');
      },
      /is a directory/,
    ],
    ['an empty path', () => '', /the output path must be a file name, got ""/],
    ['a file in a missing folder', (dir) => join(dir, 'missing', 'out.safetensors'), /cannot be created in .*missing/],
    ['a file under a regular file', (_, input) => join(input, 'out.safetensors'), /not a directory/],
    [
      'a symlink loop',
      (dir) => {
        symlinkSync(join(dir, 'b'), join(dir, 'a'));
        symlinkSync(join(dir, 'a'), join(dir, 'b'));
        return join(dir, 'a');
      },
      /chain of more than 40 symlinks/,
    ],
  ];

  it.each(cases)('%s', async (_, make, message) => {
    const { dir, input } = folder();
    const output = make(dir, input);
    const before = readdirSync(dir).map((name) => [name, lstatSync(join(dir, name)).mode]);
    await expect(quantizeFile(input, output)).rejects.toMatchObject({ code: 'IO', message: expect.stringMatching(message) });
    expect(readdirSync(dir).map((name) => [name, lstatSync(join(dir, name)).mode])).toEqual(before);
    expect(new Uint8Array(readFileSync(input))).toEqual(MODEL);
  });

  it('refuses a character device without touching it (as /dev/null would be)', async () => {
    await expect(checkOutputFile('/dev/null')).rejects.toMatchObject({ code: 'IO', message: expect.stringMatching(/\/dev\/null is a character device/) });
    expect(statSync('/dev/null').isCharacterDevice()).toBe(true);
  });

  it('refuses the input named through a symlinked folder', async () => {
    const { dir, input } = folder();
    symlinkSync(dir, join(dir, 'again'));
    await expect(quantizeFile(input, join(dir, 'again', 'model.safetensors'))).rejects.toMatchObject({ code: 'IO', message: expect.stringMatching(/is the input/) });
    expect(new Uint8Array(readFileSync(input))).toEqual(MODEL);
  });
});

describe('outputs that are written', () => {
  it('through a symlink: the link stays, its target gets the model', async () => {
    const { dir, input } = folder();
    writeFileSync(join(dir, 'target.safetensors'), 'old');
    symlinkSync('target.safetensors', join(dir, 'out.safetensors'));
    await quantizeFile(input, join(dir, 'out.safetensors'));
    expect(lstatSync(join(dir, 'out.safetensors')).isSymbolicLink()).toBe(true);
    expect(readFileSync(join(dir, 'target.safetensors')).length).toBeGreaterThan(100);
    expect(partials(dir)).toEqual([]);
  });

  it('through a dangling symlink: the file it names is created', async () => {
    const { dir, input } = folder();
    symlinkSync(join(dir, 'new.safetensors'), join(dir, 'out.safetensors'));
    await quantizeFile(input, join(dir, 'out.safetensors'));
    expect(lstatSync(join(dir, 'out.safetensors')).isSymbolicLink()).toBe(true);
    expect(statSync(join(dir, 'new.safetensors')).isFile()).toBe(true);
  });

  it.each([0o640, 0o600, 0o604, 0o755])('keeping the mode %s of the file it replaces', async (mode) => {
    const { dir, input } = folder();
    const output = join(dir, 'out.safetensors');
    writeFileSync(output, 'old');
    chmodSync(output, mode);
    await quantizeFile(input, output);
    expect(statSync(output).mode & 0o7777).toBe(mode);
    expect(readFileSync(output).length).toBeGreaterThan(100);
  });

  it('as a new file with the umask applied', async () => {
    const { dir, input } = folder();
    const output = join(dir, 'out.safetensors');
    await quantizeFile(input, output);
    const umask = process.umask();
    expect(statSync(output).mode & 0o777).toBe(0o666 & ~umask);
  });
});

describe('inputs that are not regular files', () => {
  it.each([
    [
      'a FIFO (which used to block forever)',
      (dir: string) => {
        execFileSync('mkfifo', [join(dir, 'in.fifo')]);
        return join(dir, 'in.fifo');
      },
      /is a FIFO/,
    ],
    ['a directory', (dir: string) => dir, /is a directory/],
    ['a character device', () => '/dev/zero', /is a character device/],
    ['a procfs file (stat says 0 bytes)', () => '/proc/self/status', /proc pseudo-filesystem/],
    ['an empty name', () => '', /the input path must be a file name/],
  ])('%s', async (_, make, message) => {
    const { dir } = folder();
    await expect(fileSource(make(dir))).rejects.toMatchObject({ code: 'IO', message: expect.stringMatching(message) });
  });

  it('a symlink to a regular file is read', async () => {
    const { dir, input } = folder();
    symlinkSync(input, join(dir, 'link'));
    const source = await fileSource(join(dir, 'link'));
    expect(source.size).toBe(MODEL.length);
    await source.close();
  });
});

describe('temporary outputs', () => {
  it('are removed by removePartialOutputs (what the CLI calls on SIGINT/SIGTERM)', async () => {
    const { dir } = folder();
    const sink = atomicFileSink(join(dir, 'out.safetensors'));
    await sink.write(new Uint8Array(1024));
    expect(partials(dir)).toHaveLength(1);
    removePartialOutputs();
    expect(partials(dir)).toEqual([]);
    expect(existsSync(join(dir, 'out.safetensors'))).toBe(false);
  });

  it('are removed when the check fails at the first write, and nothing is created', async () => {
    const { dir, input } = folder();
    const source = await fileSource(input);
    const sink = atomicFileSink(input, { distinctFrom: [source] });
    await expect(sink.write(new Uint8Array(8))).rejects.toMatchObject({ code: 'IO', message: expect.stringMatching(/is the input/) });
    await source.close();
    expect(partials(dir)).toEqual([]);
    expect(new Uint8Array(readFileSync(input))).toEqual(MODEL);
  });

  // Past 32 MiB the sink flushes to disk in the background while writes go on: the bytes are
  // the same, writeAt still lands before the end, and an abort after it leaves nothing.
  it('hold every byte of a 40 MiB output written in pieces past the background flushes, and nothing after an abort', async () => {
    const { dir } = folder();
    const expected = new Uint8Array(40 << 20);
    for (let i = 0; i < expected.length; i += 4093) expected[i] = (i >>> 12) & 0xff;
    for (const abort of [false, true]) {
      const path = join(dir, `out-${abort}.bin`);
      const sink = atomicFileSink(path);
      for (let at = 0, piece = 1; at < expected.length; piece = (piece * 7) % 3_000_001) {
        const length = Math.min(piece + 1, expected.length - at);
        await sink.write(expected.subarray(at, at + length));
        at += length;
      }
      await sink.writeAt(12, expected.subarray(12, 20));
      if (abort) {
        await sink.abort();
        expect(existsSync(path)).toBe(false);
      } else {
        await sink.close();
        expect(new Uint8Array(readFileSync(path)).every((byte, i) => byte === expected[i])).toBe(true);
        expect(statSync(path).size).toBe(expected.length);
      }
      expect(partials(dir)).toEqual([]);
    }
  });

  it('refuse writeAt past what was written', async () => {
    const { dir } = folder();
    const sink = atomicFileSink(join(dir, 'out.safetensors'));
    await sink.write(new Uint8Array(16));
    await expect(sink.writeAt(12, new Uint8Array(8))).rejects.toMatchObject({ code: 'IO' });
    await sink.abort();
    expect(partials(dir)).toEqual([]);
  });
});

describe('the CLI names the file in a file error', () => {
  it.each([
    ['quantize', (input: string, dir: string) => ['quantize', input, '-o', join(dir, 'out.safetensors'), '--bits', '4']],
    ['dequantize', (input: string, dir: string) => ['dequantize', input, '-o', join(dir, 'out.safetensors')]],
    ['inspect', (input: string) => ['inspect', input]],
  ])('%s', async (_, argv) => {
    const { dir } = folder();
    const input = join(dir, 'odd.safetensors');
    const header = new TextEncoder().encode(JSON.stringify({ x: { dtype: 'Q9', shape: [1], data_offsets: [0, 1] } }));
    const bytes = new Uint8Array(8 + header.length + 1);
    new DataView(bytes.buffer).setBigUint64(0, BigInt(header.length), true);
    bytes.set(header, 8);
    writeFileSync(input, bytes);
    const { code, stderr } = await runCli(argv(input, dir));
    expect(stderr).toContain(`edge-moq: ${input}: `);
    expect(stderr).toMatch(/unknown dtype/);
    expect(code).toBe(2);
    expect(partials(dir)).toEqual([]);
    expect(existsSync(join(dir, 'out.safetensors'))).toBe(false);
  });
});

// A seeded campaign over the kinds of files a command can be pointed at: each pair of input and
// output kinds either succeeds or fails with exit 2, and never changes the input, replaces a
// non-regular file, or leaves a temporary file. FUZZ_RUNS sets more runs by hand.
describe('file kinds, fuzzed', () => {
  /** Makes `path` with `make` and returns it. */
  const made = (path: string, make: (path: string) => void): string => {
    make(path);
    return path;
  };
  /** Each kind of input: made in `dir` (beside the model and a packed file), the path to pass. */
  const INPUT_MAKERS = {
    model: (_dir: string, model: string) => model,
    packed: (_dir: string, _model: string, packed: string) => packed,
    'symlink to model': (dir: string, model: string) => made(join(dir, 'in-link'), (p) => symlinkSync(model, p)),
    FIFO: (dir: string) => made(join(dir, 'in-fifo'), (p) => execFileSync('mkfifo', [p])),
    directory: (dir: string) => dir,
    '/dev/zero': () => '/dev/zero',
    '/proc/self/status': () => '/proc/self/status',
    missing: (dir: string) => join(dir, 'missing.safetensors'),
    empty: (dir: string) => made(join(dir, 'empty.safetensors'), (p) => writeFileSync(p, '')),
  } satisfies Record<string, (dir: string, model: string, packed: string) => string>;
  /** Each kind of output: made in `dir` for `input`, the path to pass (`out` unless it says otherwise). */
  const OUTPUT_MAKERS = {
    new: (_dir: string, _input: string, out: string) => out,
    'existing 0640': (_dir: string, _input: string, out: string) =>
      made(out, (p) => {
        writeFileSync(p, 'old');
        chmodSync(p, 0o640);
      }),
    'the input': (_dir: string, input: string) => input,
    'symlink to the input': (dir: string, input: string) => made(join(dir, 'out-link'), (p) => symlinkSync(input, p)),
    'hard link to the input': (dir: string, input: string) => {
      try {
        return made(join(dir, 'out-hard'), (p) => linkSync(input, p));
      } catch {
        return input;
      }
    },
    FIFO: (_dir: string, _input: string, out: string) => made(out, (p) => execFileSync('mkfifo', [p])),
    directory: (_dir: string, _input: string, out: string) => made(out, (p) => mkdirSync(p)),
    'dangling symlink': (dir: string, _input: string, out: string) => made(out, (p) => symlinkSync(join(dir, 'nowhere.safetensors'), p)),
    'symlink to existing': (dir: string, _input: string, out: string) =>
      made(out, (p) => {
        writeFileSync(join(dir, 'existing.safetensors'), 'old');
        symlinkSync(join(dir, 'existing.safetensors'), p);
      }),
    'in a missing folder': (dir: string) => join(dir, 'missing', 'out.safetensors'),
    'empty name': () => '',
    'symlink loop': (dir: string, _input: string, out: string) =>
      made(out, (p) => {
        symlinkSync(join(dir, 'loop-b'), p);
        symlinkSync(p, join(dir, 'loop-b'));
      }),
  } satisfies Record<string, (dir: string, input: string, out: string) => string>;
  const INPUTS = Object.keys(INPUT_MAKERS) as (keyof typeof INPUT_MAKERS)[];
  const OUTPUTS = Object.keys(OUTPUT_MAKERS) as (keyof typeof OUTPUT_MAKERS)[];

  /** Every entry of `dir` with its kind, mode and, for regular files, contents. */
  const snapshot = (dir: string) =>
    readdirSync(dir)
      .filter((name) => name !== 'out.safetensors' && !name.startsWith('nowhere') && name !== 'existing.safetensors')
      .map((name) => {
        const stats = lstatSync(join(dir, name));
        return [name, stats.mode, stats.isFile() ? readFileSync(join(dir, name)).toString('base64') : ''];
      });

  it(
    'never loses the input, replaces a special file or leaves a temporary file',
    async () => {
      vi.spyOn(console, 'log').mockImplementation(() => undefined);
      vi.spyOn(console, 'error').mockImplementation(() => undefined);
      vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
      try {
        await fc.assert(
          fc.asyncProperty(fc.constantFrom('quantize', 'dequantize'), fc.constantFrom(...INPUTS), fc.constantFrom(...OUTPUTS), async (command, inputKind, outputKind) => {
            const { dir, input: model } = folder();
            const packed = join(dir, 'packed.safetensors');
            await quantizeFile(model, packed);
            const input = INPUT_MAKERS[inputKind](dir, model, packed);
            const output = OUTPUT_MAKERS[outputKind](dir, input, join(dir, 'out.safetensors'));
            const before = snapshot(dir);
            const code = await runCommandLine([command, input, '-o', output, ...(command === 'quantize' ? ['--bits', '4'] : [])]);
            expect([0, 2]).toContain(code);
            expect(snapshot(dir)).toEqual(before);
            expect(partials(dir)).toEqual([]);
            if (outputKind === 'FIFO') expect(lstatSync(output).isFIFO()).toBe(true);
            if (outputKind === 'directory') expect(lstatSync(output).isDirectory()).toBe(true);
            if (code === 0 && outputKind === 'existing 0640') expect(statSync(output).mode & 0o777).toBe(0o640);
          }),
          { seed: FUZZ_SEED, numRuns: fuzzRuns(60) },
        );
      } finally {
        vi.restoreAllMocks();
      }
    },
    FUZZ_TIMEOUT_MS,
  );
});
