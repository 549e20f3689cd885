// The web app's worker jobs (app/jobs/*.ts) run in Node on Blobs, without a browser: each
// format's outputs equal the CLI's byte for byte for the same options; a cancel mid-run leaves
// no output; a bad file is a typed error; the histogram compares a tensor before and after.

import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CancelToken, JobCancelled } from '../app/jobs/cancel.js';
import { tensorHistogram } from '../app/jobs/histogram.js';
import { memoryStore, type OutputStore } from '../app/jobs/io.js';
import { openModel, type NamedBlob } from '../app/jobs/model.js';
import { runQuantizeJob, type JobResult } from '../app/jobs/quantize.js';
import type { AppOptions } from '../app/protocol.js';
import { EdgeMoqError } from '../src/errors.js';
import { encodeSafetensors, encodeFloat32 } from '../src/formats/safetensors.js';
import { createPacker } from '../src/packed/index.js';
import type { Packer } from '../src/packed/packer.js';
import { runCli } from './support/cli.js';
import { randomTensor } from './support/fixtures.js';
import { encodeGraph, float32Raw, OnnxDataType } from './support/onnx-model.js';
import { writeGraphModel } from './support/tfjs-models.js';

const dir = mkdtempSync(join(tmpdir(), 'edge-moq-app-jobs-'));
let packer: Packer;
beforeAll(async () => {
  packer = await createPacker('wasm-simd');
});
afterAll(() => {
  packer?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

/** Files on disk as the browser hands them over: Files named like them. */
const filesOf = (...paths: string[]): NamedBlob[] => paths.map((p) => new File([readFileSync(p)], basename(p)));

async function job(files: NamedBlob[], options: AppOptions, token = new CancelToken(), store: OutputStore = memoryStore(token)): Promise<JobResult> {
  return runQuantizeJob(files, options, { packer, store, token });
}

async function bytesOf(result: JobResult): Promise<Map<string, Uint8Array>> {
  return new Map(await Promise.all(result.outputs.map(async (o) => [o.name, new Uint8Array(await o.file.arrayBuffer())] as const)));
}

function checkpoint(path: string, seed: number): void {
  writeFileSync(
    path,
    encodeSafetensors([
      { name: 'layer.0.weight', dtype: 'F32', shape: [64, 96], data: encodeFloat32(randomTensor(64 * 96, seed), 'F32') },
      { name: 'layer.0.bias', dtype: 'F32', shape: [64], data: encodeFloat32(randomTensor(64, seed + 1), 'F32') },
      { name: 'layer.1.weight', dtype: 'F16', shape: [32, 64], data: encodeFloat32(randomTensor(32 * 64, seed + 2), 'F16') },
    ]),
  );
}

describe('app jobs: the same bytes as the CLI', () => {
  it('safetensors, with a recipe and include/exclude', async () => {
    const input = join(dir, 'model.safetensors');
    checkpoint(input, 1);
    const recipe = {
      rules: [
        { match: 'layer\\.1', bits: 8, groupSize: 16 },
        { match: '.*', bits: 4 },
      ],
    };
    writeFileSync(join(dir, 'recipe.json'), JSON.stringify(recipe));
    const cli = await runCli(['quantize', input, '-o', join(dir, 'model.q4.safetensors'), '--bits', '4', '--group-size', '32', '--recipe', join(dir, 'recipe.json'), '--quiet']);
    expect(cli.code, cli.stderr).toBe(0);
    const result = await job(filesOf(input), { bits: 4, groupSize: 32, recipe });
    const out = await bytesOf(result);
    expect([...out.keys()]).toEqual(['model.q4.safetensors']);
    expect(out.get('model.q4.safetensors')).toEqual(new Uint8Array(readFileSync(join(dir, 'model.q4.safetensors'))));
    expect(result.rows.map((r) => r.packedAs)).toEqual(['symmetric 4-bit, groups of 32 (rule 2)', 'symmetric 4-bit, groups of 32 (rule 2)', 'symmetric 8-bit, groups of 16 (rule 1)']);
    for (const row of result.rows.filter((r) => r.packed)) expect(cli.stdout).toContain(row.packedAs);

    const asym = join(dir, 'asym.q3.safetensors');
    expect((await runCli(['quantize', input, '-o', asym, '--bits', '3', '--type', 'asymmetric', '--exclude', 'layer\\.1', '--quiet'])).code).toBe(0);
    const again = await bytesOf(await job(filesOf(input), { bits: 3, type: 'asymmetric', exclude: 'layer\\.1' }));
    expect(again.get('model.q3.safetensors')).toEqual(new Uint8Array(readFileSync(asym)));
  });

  it('a sharded checkpoint: the shards and the index the CLI writes into its folder', async () => {
    const folder = join(dir, 'sharded');
    mkdirSync(folder);
    checkpoint(join(folder, 'model-00001-of-00002.safetensors'), 5);
    writeFileSync(join(folder, 'model-00002-of-00002.safetensors'), encodeSafetensors([{ name: 'head.weight', dtype: 'F32', shape: [16, 64], data: encodeFloat32(randomTensor(16 * 64, 9), 'F32') }]));
    const weightMap: Record<string, string> = {
      'layer.0.weight': 'model-00001-of-00002.safetensors',
      'layer.0.bias': 'model-00001-of-00002.safetensors',
      'layer.1.weight': 'model-00001-of-00002.safetensors',
      'head.weight': 'model-00002-of-00002.safetensors',
    };
    writeFileSync(join(folder, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: 1 }, weight_map: weightMap }, null, 2));
    const out = join(dir, 'sharded-out');
    const cli = await runCli(['quantize', join(folder, 'model.safetensors.index.json'), '-o', out, '--bits', '4', '--group-size', '64', '--jobs', '1', '--quiet']);
    expect(cli.code, cli.stderr).toBe(0);
    const files = filesOf(...readdirSync(folder).map((f) => join(folder, f)));
    const result = await bytesOf(await job(files, { bits: 4, groupSize: 64 }));
    expect([...result.keys()].sort()).toEqual(readdirSync(out).sort());
    for (const [name, bytes] of result) expect(bytes, name).toEqual(new Uint8Array(readFileSync(join(out, name))));

    // A recipe whose rule takes tensors of one shard only: the checkpoint-wide check lets it through, as the CLI's does.
    const recipe = { rules: [{ match: '^head\\.', bits: 8 }] };
    writeFileSync(join(dir, 'sharded-recipe.json'), JSON.stringify(recipe));
    const recipeOut = join(dir, 'sharded-recipe-out');
    const withRecipe = await runCli([
      'quantize',
      join(folder, 'model.safetensors.index.json'),
      '-o',
      recipeOut,
      '--bits',
      '4',
      '--group-size',
      '64',
      '--jobs',
      '1',
      '--recipe',
      join(dir, 'sharded-recipe.json'),
      '--quiet',
    ]);
    expect(withRecipe.code, withRecipe.stderr).toBe(0);
    const recipeResult = await bytesOf(await job(files, { bits: 4, groupSize: 64, recipe }));
    for (const [name, bytes] of recipeResult) expect(bytes, name).toEqual(new Uint8Array(readFileSync(join(recipeOut, name))));

    const missing = files.filter((f) => f.name !== 'model-00002-of-00002.safetensors');
    await expect(openModel(missing, new CancelToken())).rejects.toThrow(/needs the file "model-00002-of-00002\.safetensors"/);
  });

  it('a tfjs model: model.q4.json and model.q4.moq.safetensors', async () => {
    const written = writeGraphModel(join(dir, 'tfjs'));
    const cli = await runCli(['quantize', written.json, '-o', join(dir, 'tfjs-out', 'model.q4.json'), '--bits', '4', '--quiet']);
    expect(cli.code, cli.stderr).toBe(0);
    const files = filesOf(...readdirSync(written.folder).map((f) => join(written.folder, f)));
    const opened = await openModel(files, new CancelToken());
    expect(opened).toMatchObject({ format: 'tfjs', entry: 'model.json' });
    expect(opened.tensors.map((t) => t.name)).toEqual(['w1', 'w2', 'shape']);
    const result = await bytesOf(await job(files, { bits: 4 }));
    expect([...result.keys()]).toEqual(['model.q4.json', 'model.q4.moq.safetensors']);
    for (const [name, bytes] of result) expect(bytes, name).toEqual(new Uint8Array(readFileSync(join(dir, 'tfjs-out', name))));
  });

  it('an ONNX model with external data: model.q4.onnx and model.q4.onnx.data', async () => {
    const K = 64;
    const N = 32;
    const w = randomTensor(K * N, 21, 0.5);
    const b = randomTensor(N, 22);
    const folder = join(dir, 'onnx');
    mkdirSync(folder);
    writeFileSync(
      join(folder, 'model.onnx'),
      encodeGraph({
        name: 'g',
        nodes: [
          { opType: 'MatMul', name: 'proj', inputs: ['A', 'w'], outputs: ['H'] },
          { opType: 'Add', name: 'bias', inputs: ['H', 'b'], outputs: ['Y'] },
        ],
        initializers: [
          { name: 'w', dataType: OnnxDataType.FLOAT, dims: [K, N], external: { location: 'model.onnx.data', offset: 0, length: K * N * 4 } },
          { name: 'b', dataType: OnnxDataType.FLOAT, dims: [N], external: { location: 'model.onnx.data', offset: K * N * 4, length: N * 4 } },
        ],
        inputs: [{ name: 'A', elemType: OnnxDataType.FLOAT, shape: [2, K] }],
        outputs: [{ name: 'Y', elemType: OnnxDataType.FLOAT, shape: [2, N] }],
      }),
    );
    writeFileSync(join(folder, 'model.onnx.data'), new Uint8Array([...float32Raw(w), ...float32Raw(b)]));
    mkdirSync(join(dir, 'onnx-out'));
    const output = join(dir, 'onnx-out', 'model.q4.onnx');
    const cli = await runCli(['quantize', join(folder, 'model.onnx'), '-o', output, '--bits', '4', '--group-size', '16']);
    expect(cli.code, cli.stderr).toBe(0);
    const files = filesOf(join(folder, 'model.onnx.data'), join(folder, 'model.onnx'));
    const result = await job(files, { bits: 4, groupSize: 16 });
    const out = await bytesOf(result);
    expect([...out.keys()]).toEqual(['model.q4.onnx', 'model.q4.onnx.data']);
    expect(out.get('model.q4.onnx.data')).toEqual(new Uint8Array(readFileSync(`${output}.data`)));
    expect(out.get('model.q4.onnx')).toEqual(new Uint8Array(readFileSync(output)));
    expect(result.rows).toMatchObject([{ name: 'w', shape: [K, N], packed: true, packedAs: 'symmetric 4-bit, blocks of 16 (MatMul proj)' }]);

    await expect(openModel([files[1]!], new CancelToken())).rejects.toThrow(/needs the file "model\.onnx\.data"/);

    const histogram = await tensorHistogram(files, { bits: 4, groupSize: 16 }, result.rows, 'w', 20, packer, result.onnxOps);
    expect(histogram.before.reduce((a, c) => a + c, 0)).toBe(K * N);
    expect(histogram.after.reduce((a, c) => a + c, 0)).toBe(K * N);
  });

  it('an ONNX model whose weights are Constant nodes (as Paddle exports them): listed by the names MatMul reads, packed as the CLI packs them', async () => {
    const folder = join(dir, 'onnx-constants');
    mkdirSync(folder);
    const input = join(folder, 'consts.onnx');
    writeFileSync(
      input,
      encodeGraph({
        name: 'g',
        nodes: [
          {
            opType: 'Constant',
            name: 'c',
            inputs: [],
            outputs: ['cw'],
            attributes: { value: { tensor: { name: 'cw', dataType: OnnxDataType.FLOAT, dims: [32, 8], raw: float32Raw(randomTensor(256, 61)) } } },
          },
          { opType: 'MatMul', name: 'mm', inputs: ['A', 'cw'], outputs: ['Y'] },
        ],
        initializers: [],
        inputs: [{ name: 'A', elemType: OnnxDataType.FLOAT, shape: [1, 32] }],
        outputs: [{ name: 'Y', elemType: OnnxDataType.FLOAT, shape: [1, 8] }],
      }),
    );
    const opened = await openModel(filesOf(input), new CancelToken());
    expect(opened.tensors).toEqual([{ name: 'cw', shape: [32, 8], dtype: 'FLOAT', bytes: 1024 }]);
    mkdirSync(join(dir, 'onnx-constants-out'));
    const output = join(dir, 'onnx-constants-out', 'consts.q8.onnx');
    expect((await runCli(['quantize', input, '-o', output, '--bits', '8', '--group-size', '16'])).code).toBe(0);
    const out = await bytesOf(await job(filesOf(input), { bits: 8, groupSize: 16 }));
    expect([...out.keys()]).toEqual(['consts.q8.onnx']);
    expect(out.get('consts.q8.onnx')).toEqual(new Uint8Array(readFileSync(output)));

    // Inline weights report no progress: a cancel stops the job at its next pack.
    const token = new CancelToken();
    const store = memoryStore(token);
    const pack = packer.pack.bind(packer);
    const stopping: Packer = {
      kind: packer.kind,
      pack: (...args) => {
        token.cancel();
        return pack(...args);
      },
      unpack: packer.unpack.bind(packer),
      measure: packer.measure.bind(packer),
      dispose: () => undefined,
    };
    await expect(runQuantizeJob(filesOf(input), { bits: 8, groupSize: 16 }, { packer: stopping, store, token })).rejects.toBeInstanceOf(JobCancelled);
  });
});

describe('app jobs: cancel, errors, histogram', () => {
  const input = join(dir, 'big.safetensors');
  beforeAll(() =>
    writeFileSync(
      input,
      encodeSafetensors(Array.from({ length: 8 }, (_, i) => ({ name: `t${i}`, dtype: 'F32' as const, shape: [256, 256], data: encodeFloat32(randomTensor(256 * 256, 40 + i), 'F32') }))),
    ),
  );

  it('a cancel mid-run stops the job, aborts every output, and the next job runs', async () => {
    const token = new CancelToken();
    const store = memoryStore(token);
    const aborted: string[] = [];
    const watched: OutputStore = {
      kind: store.kind,
      async create(name) {
        const sink = await store.create(name);
        const abort = sink.abort.bind(sink);
        sink.abort = async () => {
          aborted.push(name);
          await abort();
        };
        return sink;
      },
      abortAll: () => store.abortAll(),
    };
    let seen = 0;
    const run = runQuantizeJob(
      filesOf(input),
      { bits: 4 },
      {
        packer,
        store: watched,
        token,
        onProgress: (p) => {
          if (p.index === 3 && seen++ === 0) token.cancel();
        },
      },
    );
    await expect(run).rejects.toBeInstanceOf(JobCancelled);
    expect(aborted).toContain('big.q4.safetensors');
    const after = await job(filesOf(input), { bits: 4 });
    expect(after.rows).toHaveLength(8);
  });

  it('a file that is not a model, a truncated one and a bad recipe are typed errors', async () => {
    const text = new File(['hello, not a model'], 'notes.txt');
    await expect(job([text], { bits: 4 })).rejects.toThrow(expect.objectContaining({ code: 'MALFORMED_FILE', message: expect.stringMatching(/not a model file/) }));
    const whole = readFileSync(input);
    const truncated = new File([whole.subarray(0, whole.length - 1000)], 'big.safetensors');
    const error = await job([truncated], { bits: 4 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EdgeMoqError);
    await expect(job(filesOf(input), { bits: 4, recipe: { rules: [{ match: '(', bits: 4 }] } as never })).rejects.toBeInstanceOf(EdgeMoqError);
    await expect(job(filesOf(input), { bits: 4, include: '[' })).rejects.toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });

  it('an output past the memory limit is a typed IO error (no OPFS)', async () => {
    const token = new CancelToken();
    await expect(job(filesOf(input), { bits: 4 }, token, memoryStore(token, 10_000))).rejects.toThrow(
      expect.objectContaining({ code: 'IO', message: expect.stringMatching(/Origin Private File System/) }),
    );
  });

  it('the histogram of a packed tensor: every value binned, before and after, over the input range', async () => {
    const result = await job(filesOf(input), { bits: 2, groupSize: 64 });
    const histogram = await tensorHistogram(filesOf(input), { bits: 2, groupSize: 64 }, result.rows, 't3', 32, packer);
    expect(histogram.edges).toHaveLength(33);
    expect(histogram.before.reduce((a, c) => a + c, 0)).toBe(256 * 256);
    expect(histogram.after.reduce((a, c) => a + c, 0)).toBe(256 * 256);
    // 2-bit codes: at most 4 values per group, so far fewer bins are filled after than before.
    expect(histogram.after.filter((c) => c > 0).length).toBeLessThan(histogram.before.filter((c) => c > 0).length);
    await expect(tensorHistogram(filesOf(input), { bits: 2 }, result.rows, 'nope', 32, packer)).rejects.toThrow(/no tensor "nope"/);
  });
});
