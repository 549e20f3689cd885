// One safetensors file's tensors packed on worker threads (quantizeSafetensorsFile, through the
// package's `edge-moq/node` entry: built dist/, because the workers load the module's compiled
// file). Any number of workers writes the bytes one thread writes, with every option, for a real
// model's tensors and for a synthetic file of many kinds of tensor, and reports the same progress;
// a failing tensor stops the run, names the tensor and leaves no output.

import { execFile, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import type * as NodeEntry from '../src/node.js';
import type * as PackedEntry from '../src/packed/index.js';
import { encodeFloat32, encodeSafetensors, type Dtype, type TensorBytes } from '../src/formats/safetensors.js';
import { BUILT_CLI, runBuiltCli } from './support/built-cli.js';
import { randomTensor } from './support/fixtures.js';
import { useScratch } from './support/scratch.js';
import { faceresModelPath, readModelArtifacts } from './support/tfjs-real-model.js';

const entry = (await import(new URL('../dist/bundles/node.js', import.meta.url).href)) as typeof NodeEntry;
const packed = (await import(new URL('../dist/bundles/packed.js', import.meta.url).href)) as typeof PackedEntry;
const { atomicFileSink, fileSource, quantizeSafetensorsFile } = entry;
const { root, newFolder } = useScratch('edge-moq-file-workers-');

/** @vladmandic/human's face description model (test/support/tfjs-real-model.ts): its 128 weights as a safetensors file, float16 as stored, int32 as I32. */
function realModelFile(): string {
  const { weightSpecs, weightData } = readModelArtifacts(faceresModelPath());
  const bytes = new Uint8Array(weightData as ArrayBuffer);
  let offset = 0;
  const tensors = weightSpecs!.map((spec): TensorBytes => {
    const length = spec.shape.reduce((a, b) => a * b, 1);
    const dtype: Dtype = spec.quantization?.dtype === 'float16' ? 'F16' : spec.dtype === 'int32' ? 'I32' : 'F32';
    const size = length * (dtype === 'F16' ? 2 : 4);
    const data = bytes.slice(offset, offset + size);
    offset += size;
    return { name: spec.name, dtype, shape: spec.shape, data };
  });
  expect(offset).toBe(bytes.length);
  const path = join(root, 'faceres.safetensors');
  writeFileSync(path, encodeSafetensors(tensors));
  return path;
}

/** 48 tensors of every kind quantize-file decides about: float matrices in each float dtype, 3-D and 4-D (a depthwise [3, 3, C, 1]), vectors, a scalar, an empty tensor, integers. */
function syntheticFile(poison?: { tensor: number; index: number }): string {
  const tensors: TensorBytes[] = [];
  for (let i = 0; i < 48; i++) {
    const kind = i % 8;
    const name = `layer.${i}.${['attn.q', 'attn.k', 'mlp.up', 'mlp.down', 'norm', 'conv', 'embed', 'misc'][kind]}`;
    const shape = [[24, 64], [32, 96], [16, 48, 2], [64, 32], [64], [3, 3, 8, 1], [40, 128], [[], [0, 8], [6, 4]][i % 3]!][kind]!;
    const length = shape.reduce((a, b) => a * b, 1);
    if (kind === 7 && i % 3 === 2) {
      tensors.push({ name, dtype: 'I64', shape, data: new Uint8Array(length * 8).fill(i) });
      continue;
    }
    const values = randomTensor(length, 1000 + i, 0.5);
    if (poison?.tensor === i) values[poison.index] = Number.NaN;
    const dtype: Dtype = (['F32', 'F16', 'BF16'] as const)[i % 3]!;
    tensors.push({ name, dtype, shape, data: encodeFloat32(values, dtype) });
  }
  const path = join(newFolder(), 'synthetic.safetensors');
  writeFileSync(path, encodeSafetensors(tensors, { format: 'pt' }));
  return path;
}

type Options = Omit<NodeEntry.FileQuantizeOptions, 'workers'>;

/** The output of `options` on `workers` threads (this one among them unless `thisThreadPacks` is false), its report and its progress. */
async function quantize(input: string, options: Options, workers: number, thisThreadPacks = true) {
  const output = join(newFolder(), 'out.safetensors');
  const events: unknown[] = [];
  const report = await quantizeSafetensorsFile(input, output, { ...options, workers, thisThreadPacks, onProgress: (p) => events.push(p) });
  return { bytes: new Uint8Array(readFileSync(output)), report, events };
}

const OPTION_TABLE: [string, Options][] = [
  ['4 bits, one group per row', { bits: 4, backend: 'wasm' }],
  ['4 bits, groups of 32, DeepSpeed grid', { bits: 4, groupSize: 32, grid: 'deepspeed' }],
  ['3 bits asymmetric, 4 groups a tensor', { bits: 3, type: 'asymmetric', groups: 4 }],
  ['8 bits, stochastic rounding, seed 5', { bits: 8, rounding: 'stochastic', seed: 5 }],
  ['2 bits (ternary), groups of 16', { bits: 2, groupSize: 16 }],
  ['1 bit (binary), groups of 8', { bits: 1, groupSize: 8 }],
  ['5 bits along axis 0', { bits: 5, axis: 0 }],
  ['6 bits, groups larger than a chunk', { bits: 6, groupSize: 512, chunkBytes: 1024 }],
  ['include, exclude and vectors', { bits: 4, include: 'layer\\.[0-9]+\\.(attn|norm)', exclude: 'layer\\.1[0-9]\\.', includeVectors: true }],
  [
    'a recipe',
    {
      bits: 4,
      recipe: {
        rules: [
          { match: 'attn\\.q', bits: 8, type: 'asymmetric' },
          { match: 'mlp', bits: 3, groupSize: 16, rounding: 'stochastic' },
          { match: 'embed', keep: true },
        ],
      },
      seed: 3,
    },
  ],
];

describe('workers write the bytes one thread writes', () => {
  const synthetic = syntheticFile();

  // With this thread packing, the tensors it takes before the workers are ready vary from run to
  // run; with thisThreadPacks: false every tensor crosses from a worker.
  it.each(OPTION_TABLE)('%s: workers 2 and 3 (with and without this thread) as workers 1, with the same report and progress', async (_, options) => {
    const one = await quantize(synthetic, options, 1);
    expect(one.report).toMatchObject({ workers: 1, workerThreads: 0 });
    for (const workers of [2, 3]) {
      for (const thisThreadPacks of [true, false]) {
        const many = await quantize(synthetic, options, workers, thisThreadPacks);
        expect(many.report).toMatchObject({ workers, workerThreads: thisThreadPacks ? workers - 1 : workers });
        expect(Buffer.compare(many.bytes, one.bytes)).toBe(0);
        const { workers: _w, workerThreads: _t, ...report } = many.report;
        const { workers: _o, workerThreads: _u, ...reference } = one.report;
        expect(report).toEqual(reference);
        expect(many.events).toEqual(one.events);
      }
    }
  });

  it("the real model's 128 tensors (float16 and int32), 4 and 8 bits, as quantizeSafetensors writes them", async () => {
    const input = realModelFile();
    for (const options of [
      { bits: 4, groupSize: 32 },
      { bits: 8, type: 'asymmetric' as const },
    ]) {
      const reference = join(newFolder(), 'reference.safetensors');
      const source = await fileSource(input);
      const packer = await packed.createPacker('auto');
      try {
        await packed.quantizeSafetensors(source, atomicFileSink(reference), packer, options);
      } finally {
        packer.dispose();
        await source.close();
      }
      const many = await quantize(input, options, 2);
      expect(many.report.packed).toBeGreaterThan(20);
      expect(Buffer.compare(many.bytes, readFileSync(reference))).toBe(0);
    }
  });

  it('a file packed before keeps its packed tensors, and the rest are packed the same', async () => {
    const first = await quantize(synthetic, { bits: 8, include: 'attn' }, 1);
    const input = join(newFolder(), 'half.safetensors');
    writeFileSync(input, first.bytes);
    const one = await quantize(input, { bits: 4, groupSize: 16 }, 1);
    const two = await quantize(input, { bits: 4, groupSize: 16 }, 2);
    expect(two.report.tensors.some((t) => t.reason?.includes('carried over'))).toBe(true);
    expect(Buffer.compare(two.bytes, one.bytes)).toBe(0);
  });

  it('uses no more workers than there are tensors to pack, and this thread for a small file by default', async () => {
    const few = join(newFolder(), 'few.safetensors');
    writeFileSync(few, encodeSafetensors([0, 1].map((i) => ({ name: `w${i}`, dtype: 'F32' as const, shape: [8, 8], data: encodeFloat32(randomTensor(64, i), 'F32') }))));
    expect((await quantize(few, { bits: 4 }, 8)).report.workers).toBe(2);
    const output = join(newFolder(), 'out.safetensors');
    const report = await quantizeSafetensorsFile(synthetic, output, { bits: 4 });
    expect(report.workers).toBe(1);
    expect(report.backend).toMatch(/^wasm/);
  });
});

describe('failures leave no output and name the tensor', () => {
  const leftovers = (folder: string) => readdirSync(folder);

  // Tensor 0 is packed by this thread (the workers are not ready yet); with thisThreadPacks: false
  // by a worker; tensor 41 by whichever thread takes it.
  it.each([
    [0, true],
    [0, false],
    [41, true],
    [41, false],
  ])('a NaN in tensor %i (thisThreadPacks: %s): the error names it as one thread does, and nothing is written', async (tensor, thisThreadPacks) => {
    const input = syntheticFile({ tensor, index: 7 });
    const errors = [];
    for (const workers of [1, 2]) {
      const folder = newFolder();
      const error = await quantizeSafetensorsFile(input, join(folder, 'out.safetensors'), { bits: 4, workers, thisThreadPacks: workers === 1 || thisThreadPacks }).then(
        () => null,
        (e: unknown) => e,
      );
      expect(leftovers(folder)).toEqual([]);
      errors.push(error);
    }
    expect(errors[1]).toMatchObject({ name: 'InvalidInputError', code: 'NON_FINITE', message: expect.stringContaining(`tensor "layer.${tensor}.`) });
    expect((errors[1] as Error).message).toBe((errors[0] as Error).message);
  });

  it('bad options are refused before any worker starts, as one thread refuses them', async () => {
    const synthetic = syntheticFile();
    for (const [options, message] of [
      [{ bits: 3.5 }, /bits/],
      [{ bits: 4, groupSize: 0 }, /groupSize/],
      [{ bits: 4, recipe: { rules: [{ match: 'nowhere', bits: 8 }] } }, /match no tensor/],
    ] as const) {
      const errors = await Promise.all(
        [1, 2].map((workers) =>
          quantizeSafetensorsFile(synthetic, join(newFolder(), 'out.safetensors'), { ...options, workers } as NodeEntry.FileQuantizeOptions).then(
            () => null,
            (e: unknown) => e,
          ),
        ),
      );
      expect(errors[0]).toMatchObject({ message: expect.stringMatching(message) });
      expect((errors[1] as Error).message).toBe((errors[0] as Error).message);
    }
  });

  it.each([1, 'no', null])('refuses thisThreadPacks: %j', async (thisThreadPacks) => {
    await expect(quantizeSafetensorsFile(syntheticFile(), join(newFolder(), 'out.safetensors'), { bits: 4, thisThreadPacks: thisThreadPacks as unknown as boolean })).rejects.toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/thisThreadPacks must be true or false/) }),
    );
  });

  it.each([0, 1.5, -1, '2'])('refuses workers: %j', async (workers) => {
    await expect(quantizeSafetensorsFile(syntheticFile(), join(newFolder(), 'out.safetensors'), { bits: 4, workers: workers as number })).rejects.toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/workers must be a positive integer/) }),
    );
  });

  it('refuses a WebGPU backend (its device cannot cross threads) and an output that is the input', async () => {
    const synthetic = syntheticFile();
    await expect(quantizeSafetensorsFile(synthetic, join(newFolder(), 'out.safetensors'), { bits: 4, backend: 'webgpu' as 'wasm' })).rejects.toThrow(/backend must be one of auto, wasm-simd, wasm/);
    const before = readFileSync(synthetic);
    await expect(quantizeSafetensorsFile(synthetic, synthetic, { bits: 4, workers: 2 })).rejects.toMatchObject({ code: 'IO', message: expect.stringMatching(/is the input/) });
    expect(Buffer.compare(readFileSync(synthetic), before)).toBe(0);
  });
});

describe('the command line', () => {
  it('--workers 2 writes the bytes --workers 1 writes, and says it used them', async () => {
    const synthetic = syntheticFile();
    const folder = newFolder();
    const results = [];
    for (const workers of ['1', '2']) {
      const output = join(folder, `out${workers}.safetensors`);
      results.push(await runBuiltCli('quantize', synthetic, '-o', output, '--bits', '4', '--group-size', '16', '--workers', workers, '--quiet'));
      expect(results.at(-1)!.code).toBe(0);
    }
    expect(Buffer.compare(readFileSync(join(folder, 'out2.safetensors')), readFileSync(join(folder, 'out1.safetensors')))).toBe(0);
    expect(results[1]!.stdout).toMatch(/on wasm(-simd)?, 2 threads \(this one and 1 worker\)/);
    expect(results[0]!.stdout).not.toMatch(/threads/);
  });

  it('--workers 2 under a V8 flag that worker threads refuse (node --no-liftoff) writes the same bytes', async () => {
    const synthetic = syntheticFile();
    const folder = newFolder();
    const one = join(folder, 'one.safetensors');
    const two = join(folder, 'two.safetensors');
    expect((await runBuiltCli('quantize', synthetic, '-o', one, '--bits', '4', '--workers', '1', '--quiet')).code).toBe(0);
    const { stdout } = await promisify(execFile)(process.execPath, ['--no-liftoff', BUILT_CLI, 'quantize', synthetic, '-o', two, '--bits', '4', '--workers', '2']);
    expect(stdout).toMatch(/2 threads \(this one and 1 worker\)/);
    expect(Buffer.compare(readFileSync(two), readFileSync(one))).toBe(0);
  });

  it('refuses --workers 0, and --workers 2 with --backend webgpu', async () => {
    const synthetic = syntheticFile();
    const zero = await runBuiltCli('quantize', synthetic, '-o', join(newFolder(), 'out.safetensors'), '--bits', '4', '--workers', '0');
    expect(zero.code).not.toBe(0);
    expect(zero.stderr).toMatch(/--workers must be an integer >= 1/);
    const gpu = await runBuiltCli('quantize', synthetic, '-o', join(newFolder(), 'out.safetensors'), '--bits', '4', '--workers', '2', '--backend', 'webgpu');
    expect(gpu.code).not.toBe(0);
    expect(gpu.stderr).toMatch(/WebGPU is not available/);
  });

  it('SIGINT while workers pack removes the unfinished output', async () => {
    const folder = newFolder();
    const input = join(folder, 'model.safetensors');
    const tensor = new Uint8Array(new Float32Array(1 << 20).map((_, i) => Math.sin(i)).buffer);
    writeFileSync(input, encodeSafetensors(Array.from({ length: 16 }, (_, i) => ({ name: `layer.${i}.weight`, dtype: 'F32' as const, shape: [1024, 1024], data: tensor }))));
    const output = join(folder, 'out.safetensors');
    const child = spawn(process.execPath, [BUILT_CLI, 'quantize', input, '-o', output, '--bits', '4', '--workers', '2'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const started = Date.now();
    while (!readdirSync(folder).some((name) => name.includes('.partial-')) && child.exitCode === null && Date.now() - started < 30_000) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    child.kill('SIGINT');
    expect(await exited).toBe(130);
    expect(stderr).toMatch(/interrupted by SIGINT; removed the unfinished output/);
    expect(existsSync(output)).toBe(false);
    expect(readdirSync(folder)).toEqual(['model.safetensors']);
  });
});
