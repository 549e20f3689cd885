// The command line as a user runs it (built dist/, a child process).

import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-web';
import { describe, expect, it } from 'vitest';
import { WasmBackend } from '../src/backends/wasm/backend.js';
import { decodeFloat32, encodeFloat32, encodeSafetensors, memorySource, openSafetensors, readBytes } from '../src/formats/safetensors.js';
import { runBuiltCli } from './support/built-cli.js';
import { CONFORMANCE_PATH, randomTensor } from './support/fixtures.js';
import { encodeModel, float32Raw, OnnxDataType } from './support/onnx-model.js';

describe('edge-moq conformance', () => {
  it.each(['wasm-simd', 'wasm', 'auto'])('passes the DeepSpeed file on --backend %s', async (backend) => {
    const { code, stdout } = await runBuiltCli('conformance', CONFORMANCE_PATH, '--backend', backend);
    expect(stdout.trim().split('\n').at(-1)).toMatch(/^306 passed, 0 failed$/);
    expect(code).toBe(0);
  });

  it('prints failing cases with their first differing element and exits non-zero', async () => {
    const file = JSON.parse(readFileSync(CONFORMANCE_PATH, 'utf8'));
    const broken = file.cases.slice(0, 3);
    broken[1].expected[2] += 1;
    const path = join(mkdtempSync(join(tmpdir(), 'edge-moq-')), 'broken.json');
    writeFileSync(path, JSON.stringify({ ...file, cases: broken }));
    const { code, stdout } = await runBuiltCli('conformance', path);
    expect(stdout).toContain(`FAIL ${broken[1].id}: output[2]: got`);
    expect(stdout.trim().split('\n').at(-1)).toBe('2 passed, 1 failed');
    expect(code).toBe(1);
  });

  it.each([
    [['conformance'], /usage: edge-moq conformance/],
    [['conformance', '/nonexistent.json'], /cannot read \/nonexistent.json/],
    [['conformance', CONFORMANCE_PATH, '--backend', 'tpu'], /kind must be one of/],
    [['conformance', CONFORMANCE_PATH, '--bakend', 'wasm'], /unknown option --bakend/],
    [['frobnicate'], /unknown command "frobnicate"/],
  ])('explains a bad invocation: %j', async (args, message) => {
    const { code, stderr } = await runBuiltCli(...args);
    expect(stderr).toMatch(message);
    expect(code).toBe(2);
  });
});

describe('edge-moq quantize / dequantize / inspect', () => {
  const dir = mkdtempSync(join(tmpdir(), 'edge-moq-cli-'));
  const input = join(dir, 'model.safetensors');
  const weights = randomTensor(64 * 32, 3);
  writeFileSync(
    input,
    encodeSafetensors([
      { name: 'layers.0.weight', dtype: 'F32', shape: [64, 32], data: encodeFloat32(weights, 'F32') },
      { name: 'layers.0.bias', dtype: 'F32', shape: [64], data: encodeFloat32(randomTensor(64, 4), 'F32') },
      { name: 'layers.1.weight', dtype: 'F16', shape: [16, 32], data: encodeFloat32(randomTensor(16 * 32, 5), 'F16') },
    ]),
  );

  it('packs a multi-tensor file, shows progress (plain lines when piped) and a summary', async () => {
    const output = join(dir, 'model.q4.safetensors');
    const { code, stdout, stderr } = await runBuiltCli('quantize', input, '-o', output, '--bits', '4', '--group-size', '32');
    expect(code).toBe(0);
    expect(stderr).toMatch(/quantize:\s+0% 1\/3 layers\.0\.weight\n/);
    expect(stderr).toMatch(/quantize: 100% done/);
    expect(stdout).toMatch(/layers\.0\.weight\s+\[64, 32\]\s+F32\s+symmetric 4-bit, groups of 32\s+8\.00 KB\s+1\.25 KB\s+0\.\d+\s+0\.\d+/);
    expect(stdout).toMatch(/layers\.0\.bias\s+\[64\]\s+F32\s+kept: 1-D/);
    expect(stdout).toMatch(/packed 2 tensor\(s\), kept 1 unchanged, on wasm-simd; [\d.]+ KB -> [\d.]+ KB \([\d.]+x smaller\)/);

    const inspected = await runBuiltCli('inspect', output);
    expect(inspected.code).toBe(0);
    // The full grid (the CLI default) is recorded, so the file says /2.
    expect(inspected.stdout).toMatch(/edge-moq\.packed\/2 with 2 packed tensor\(s\)/);
    expect(inspected.stdout).toMatch(/layers\.1\.weight\s+\[16, 32\]\s+F16 -> symmetric 4-bit, groups of 32/);

    const restored = join(dir, 'model.dq.safetensors');
    const back = await runBuiltCli('dequantize', output, '-o', restored, '--dtype', 'F32');
    expect(back.code).toBe(0);
    expect(back.stdout).toMatch(/unpacked 2 tensor\(s\), copied 1 unchanged/);
    const file = await openSafetensors(memorySource(new Uint8Array(readFileSync(restored))));
    const tensor = file.tensors.find((t) => t.name === 'layers.0.weight')!;
    const values = decodeFloat32(await readBytes(file, tensor), 'F32');
    const backend = await WasmBackend.create('simd');
    // The CLI's post-training default is the full grid (it measured better on real models).
    const fake = await backend.fakeQuantize(weights.slice(), { bits: 4, groupSize: 32, grid: 'full' });
    expect(Array.from(values, (v) => v + 0)).toEqual(Array.from(fake, (v) => v + 0));
  });

  it("packs on DeepSpeed's grid with --grid deepspeed, and along another axis with --axis", async () => {
    const output = join(dir, 'model.ds.safetensors');
    const { code } = await runBuiltCli('quantize', input, '-o', output, '--bits', '4', '--grid', 'deepspeed', '--quiet');
    expect(code).toBe(0);
    const restored = join(dir, 'model.ds.dq.safetensors');
    expect((await runBuiltCli('dequantize', output, '-o', restored, '--dtype', 'F32', '--quiet')).code).toBe(0);
    const file = await openSafetensors(memorySource(new Uint8Array(readFileSync(restored))));
    const values = decodeFloat32(await readBytes(file, file.tensors.find((t) => t.name === 'layers.0.weight')!), 'F32');
    const backend = await WasmBackend.create('simd');
    const fake = await backend.fakeQuantize(weights.slice(), { bits: 4, groupSize: 32 });
    expect(Array.from(values, (v) => v + 0)).toEqual(Array.from(fake, (v) => v + 0));

    const columns = join(dir, 'model.axis0.safetensors');
    const axis = await runBuiltCli('quantize', input, '-o', columns, '--bits', '8', '--axis', '0');
    expect(axis.code).toBe(0);
    expect(axis.stdout).toMatch(/layers\.0\.weight\s+\[64, 32\]\s+F32\s+symmetric 8-bit, groups of 64/);
    expect((await runBuiltCli('inspect', columns)).stdout).toMatch(/layers\.0\.weight .*symmetric 8-bit, groups of 64 along axis 0, full grid/);
  });

  it.each([
    [['quantize', 'in.safetensors', '--bits', '4'], /usage: edge-moq quantize/],
    [['quantize', 'IN', '-o', 'OUT'], /--bits is required/],
    [['quantize', 'IN', '-o', 'OUT', '--bits', '4', '--include', '('], /--include is not a valid regular expression: .*Unterminated group/],
    [['quantize', 'IN', '-o', 'OUT', '--bits', '4', '--groups', '2', '--group-size', '8'], /--group-size or --groups, not both/],
    [['quantize', 'IN', '-o', 'OUT', '--bits', '4', '--backend', 'tpu'], /--backend must be one of/],
    [['quantize', '/nonexistent.safetensors', '-o', 'OUT', '--bits', '4'], /cannot open \/nonexistent.safetensors/],
    [['quantize', 'IN', '-o', 'OUT', '--bits', '40'], /bits must be an integer from 1 to 16/],
    [['dequantize', 'IN', '-o', 'OUT'], /not packed by edge-moq/],
    [['inspect'], /usage: edge-moq inspect/],
  ])('explains a bad invocation and writes nothing: %j', async (args, message) => {
    const output = join(dir, `out-${Math.random().toString(36).slice(2)}.safetensors`);
    const resolved = args.map((a) => (a === 'IN' ? input : a === 'OUT' ? output : a));
    const { code, stderr } = await runBuiltCli(...resolved);
    expect(stderr).toMatch(message);
    expect(code).toBe(2);
    expect(readdirSync(dir).filter((f) => f.startsWith('out-'))).toEqual([]);
  });
});

describe('edge-moq quantize on a sharded checkpoint, and merge-index', () => {
  const dir = mkdtempSync(join(tmpdir(), 'edge-moq-cli-shards-'));
  const index = join(dir, 'model.safetensors.index.json');
  const shard = (k: number) => `model-0000${k + 1}-of-00003.safetensors`;
  const weightMap: Record<string, string> = {};
  let totalSize = 0;
  for (let k = 0; k < 3; k++) {
    const tensors = [0, 1].map((t) => ({ name: `layers.${k}.w${t}`, dtype: 'F32' as const, shape: [8, 32], data: encodeFloat32(randomTensor(256, 10 * k + t), 'F32') }));
    tensors.forEach((t) => {
      weightMap[t.name] = shard(k);
      totalSize += t.data.length;
    });
    writeFileSync(join(dir, shard(k)), encodeSafetensors(tensors));
  }
  writeFileSync(index, JSON.stringify({ metadata: { total_size: totalSize }, weight_map: weightMap }));
  const filesOf = (folder: string) =>
    Object.fromEntries(
      readdirSync(folder)
        .sort()
        .map((name) => [name, readFileSync(join(folder, name)).toString('base64')]),
    );

  it('quantizes every shard with --jobs 2, and pieces merged give the same bytes', async () => {
    const whole = join(dir, 'whole');
    const one = await runBuiltCli('quantize', index, '-o', whole, '--bits', '4', '--group-size', '32', '--jobs', '2');
    expect(one.stdout).toMatch(/model\.safetensors\.index\.json \(3 shard\(s\)\): packed 6 tensor\(s\)/);
    expect(one.code).toBe(0);
    const split = join(dir, 'split');
    for (const piece of ['0/2', '1/2']) {
      const { code } = await runBuiltCli('quantize', index, '-o', split, '--bits', '4', '--group-size', '32', '--shard', piece, '--jobs', '1');
      expect(code).toBe(0);
    }
    const pieces = readdirSync(split)
      .filter((name) => name.includes('.shard-'))
      .map((name) => join(split, name));
    expect(pieces).toHaveLength(2);
    const merged = await runBuiltCli('merge-index', ...pieces, '-o', join(split, 'model.safetensors.index.json'));
    expect(merged.code).toBe(0);
    const splitFiles = filesOf(split);
    for (const name of readdirSync(split).filter((n) => n.includes('.shard-'))) delete splitFiles[name];
    expect(splitFiles).toEqual(filesOf(whole));
  });

  it('refuses WebGPU for worker threads, before any work', async () => {
    const out = join(dir, 'gpu');
    const { code, stderr } = await runBuiltCli('quantize', index, '-o', out, '--bits', '4', '--backend', 'webgpu');
    expect(stderr).toMatch(/worker threads, where WebGPU is not available/);
    expect(code).toBe(2);
  });
});

describe('edge-moq quantize on an ONNX model', () => {
  const dir = mkdtempSync(join(tmpdir(), 'edge-moq-cli-onnx-'));
  const input = join(dir, 'model.onnx');
  const weight = randomTensor(64 * 16, 21, 0.5);
  writeFileSync(
    input,
    encodeModel({
      irVersion: 10,
      opsetImports: [{ domain: '', version: 21 }],
      producerName: 'edge-moq tests',
      graph: {
        name: 'main',
        nodes: [{ opType: 'MatMul', name: 'proj', inputs: ['A', 'proj.weight'], outputs: ['Y'] }],
        initializers: [{ name: 'proj.weight', dataType: OnnxDataType.FLOAT, dims: [64, 16], raw: float32Raw(weight) }],
        inputs: [{ name: 'A', elemType: OnnxDataType.FLOAT, shape: [2, 64] }],
        outputs: [{ name: 'Y', elemType: OnnxDataType.FLOAT, shape: [2, 16] }],
      },
    }),
  );

  it('recognises the model by its content, writes MatMulNBits, and onnxruntime-web runs it', async () => {
    const output = join(dir, 'model.q4.onnx');
    const { code, stdout } = await runBuiltCli('quantize', input, '-o', output, '--group-size', '16');
    expect(stdout).toMatch(/proj\.weight\s+MatMul proj\s+\[64, 16\]\s+FLOAT\s+symmetric 4-bit, blocks of 16/);
    expect(code).toBe(0);
    ort.env.wasm.numThreads = 1;
    const session = await ort.InferenceSession.create(new Uint8Array(readFileSync(output)), { executionProviders: ['wasm'] });
    const { Y } = await session.run({ A: new ort.Tensor('float32', randomTensor(128, 22), [2, 64]) });
    await session.release();
    expect(Array.from(Y!.data as Float32Array).every(Number.isFinite)).toBe(true);
  });

  it.each([
    [['--bits', '3'], /bits must be 4 or 8 for MatMulNBits/],
    [['--axis', '1'], /--axis does not apply to ONNX models/],
    [['--rounding', 'stochastic'], /--rounding does not apply to ONNX models/],
  ])('refuses %j, writing nothing', async (extra, message) => {
    const output = join(dir, `bad-${Math.random().toString(36).slice(2)}.onnx`);
    const { code, stderr } = await runBuiltCli('quantize', input, '-o', output, ...extra);
    expect(stderr).toMatch(message);
    expect(code).toBe(2);
    expect(readdirSync(dir).filter((f) => f.startsWith('bad-'))).toEqual([]);
  });
});
