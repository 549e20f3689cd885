// Many calls in flight on one backend: Promise.all, workers that interleave their awaits,
// several Quantizers sharing a backend, and failing calls among good ones. Every result must be
// what the same call gives when the calls run one after another, bit for bit; a failing call
// rejects with its typed error, leaves its own data untouched and disturbs no other call.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend, QuantizeJob } from '../src/backends/backend.js';
import { WasmBackend } from '../src/backends/wasm/backend.js';
import { WebGpuBackend } from '../src/backends/webgpu/backend.js';
import type { QuantizerOptions } from '../src/config.js';
import type { FakeQuantizeOptions } from '../src/kernel-plan.js';
import { InvalidInputError } from '../src/errors.js';
import { Quantizer, type Parameter } from '../src/quantizer.js';
import { randomTensor, uniforms } from './support/fixtures.js';
import { testGpu, webgpuAvailable } from './support/webgpu.js';

const gpuAvailable = await webgpuAvailable();

interface Call {
  data: Float32Array;
  options: FakeQuantizeOptions;
}

/** `count` calls of every kind: sizes 1..maxLength, all bit widths, both grids, both roundings, blends. */
function calls(count: number, seed: number, maxLength: number): Call[] {
  const next = uniforms(seed);
  const pick = <T>(items: readonly T[]) => items[Math.floor(next() * items.length)]!;
  return Array.from({ length: count }, (_, i) => {
    const groups = pick([1, 2, 3, 4, 8]);
    const length = groups * (1 + Math.floor(next() * (maxLength / groups)));
    const bits = 1 + Math.floor(next() * 16);
    const options: FakeQuantizeOptions = { bits, groups };
    if (bits >= 3) {
      options.type = pick(['symmetric', 'asymmetric'] as const);
      options.rounding = pick(['nearest', 'stochastic'] as const);
      options.seed = i;
      options.step = Math.floor(next() * 100);
      options.tensorId = i * 7;
    }
    if (next() < 0.3) options.blendRatio = next();
    return { data: randomTensor(length, seed * 1000 + i, 1 + next() * 10), options };
  });
}

const copy = (list: readonly Call[]): Call[] => list.map(({ data, options }) => ({ data: data.slice(), options }));

async function sequentially(backend: Backend, list: readonly Call[]): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  for (const call of copy(list)) out.push(await backend.fakeQuantize(call.data, call.options));
  return out;
}

/** Yields to the event loop in one of several ways, so awaits interleave differently. */
function pause(k: number): Promise<unknown> {
  switch (k % 3) {
    case 0:
      return Promise.resolve();
    case 1:
      return new Promise((resolve) => setImmediate(resolve));
    default:
      return new Promise((resolve) => setTimeout(resolve, 0));
  }
}

/** Bit for bit (-0 and NaN payloads included); reports the first difference. */
function expectSameBits(got: Float32Array, want: Float32Array, label: string): void {
  const a = new Uint32Array(got.buffer, got.byteOffset, got.length);
  const b = new Uint32Array(want.buffer, want.byteOffset, want.length);
  let at = a.length === b.length ? a.findIndex((v, i) => v !== b[i]) : 0;
  if (a.length !== b.length) at = Math.min(a.length, b.length);
  expect(at, `${label}: first difference at ${at}: ${got[at]} vs ${want[at]}`).toBe(-1);
}

function model(seed: number): Parameter[] {
  return [
    { name: 'embed.weight', shape: [16, 8], data: randomTensor(128, seed) },
    { name: 'layer.0.weight', shape: [8, 24], data: randomTensor(192, seed + 1) },
    { name: 'layer.0.bias', shape: [24], data: randomTensor(24, seed + 2) },
    { name: 'layer.1.weight', shape: [24, 4], data: randomTensor(96, seed + 3) },
  ];
}

const QUANTIZER_OPTIONS: QuantizerOptions[] = [
  { groups: 4, schedules: [{ startBits: 8, targetBits: 2, period: 2 }] },
  { groups: 2, type: 'asymmetric', rounding: 'stochastic', seed: 11, schedules: [{ startBits: 12, targetBits: 4, period: 3 }] },
  { groups: 8, mixedFp16: true, changeRatio: 0.2, schedules: [{ startBits: 6, targetBits: 1, period: 1, modules: ['layer'] }] },
  { groups: 1, rounding: 'stochastic', scheduleOffset: 2, seed: 3, schedules: [{ startBits: 16, targetBits: 3, period: 2 }] },
];

/** Drives one quantizer on its own model; `pauses` interleaves other work between steps. */
async function drive(backend: Backend, options: QuantizerOptions, seed: number, steps: number, pauses: boolean): Promise<Float32Array[]> {
  const q = new Quantizer(options, { backend });
  const params = model(seed);
  for (let step = 0; step < steps; step++) {
    for (const p of params) {
      const noise = randomTensor(p.data.length, seed * 100 + step, 1e-2);
      for (let i = 0; i < p.data.length; i++) p.data[i] = Math.fround(p.data[i]! + noise[i]!);
    }
    if (pauses) await pause(step + seed);
    await q.step([params], { overflow: step === 5 });
  }
  return params.map((p) => p.data);
}

/** The concurrency contract, for one backend (`make` gives it; `scale` shrinks the work on slow ones). */
function suite(make: () => Backend, scale: { calls: number; maxLength: number; steps: number }) {
  it('Promise.all over many calls gives what sequential calls give', async () => {
    const backend = make();
    const list = calls(scale.calls, 1, scale.maxLength);
    const expected = await sequentially(backend, list);
    const inFlight = copy(list);
    const got = await Promise.all(inFlight.map((call) => backend.fakeQuantize(call.data, call.options)));
    got.forEach((data, i) => expectSameBits(data, expected[i]!, `call ${i}`));
    inFlight.forEach((call, i) => expect(got[i]).toBe(call.data));
  });

  it('workers interleaving fakeQuantize and fakeQuantizeMany with awaits give sequential results', async () => {
    const backend = make();
    const list = calls(scale.calls, 2, scale.maxLength);
    const expected = await sequentially(backend, list);
    const work = copy(list);
    const workers = 4;
    await Promise.all(
      Array.from({ length: workers }, async (_, w) => {
        const mine = work.filter((_, i) => i % workers === w);
        for (let i = 0; i < mine.length; i += 2) {
          await pause(i + w);
          // Pairs go as one fakeQuantizeMany: the same per-tensor results as single calls.
          const pair = mine.slice(i, i + 2);
          if (pair.length === 2 && w % 2 === 0) await backend.fakeQuantizeMany(pair as QuantizeJob[]);
          else for (const call of pair) await backend.fakeQuantize(call.data, call.options);
        }
      }),
    );
    work.forEach((call, i) => expectSameBits(call.data, expected[i]!, `call ${i}`));
  });

  it('several Quantizers sharing the backend follow their solo trajectories', async () => {
    const backend = make();
    const solo: Float32Array[][] = [];
    for (const [i, options] of QUANTIZER_OPTIONS.entries()) solo.push(await drive(backend, options, 10 + i, scale.steps, false));
    const together = await Promise.all(QUANTIZER_OPTIONS.map((options, i) => drive(backend, options, 10 + i, scale.steps, true)));
    together.forEach((params, i) => params.forEach((data, j) => expectSameBits(data, solo[i]![j]!, `quantizer ${i}, parameter ${j}`)));
  });

  it('calls that fail validation among good ones: typed rejections, untouched data, the others unaffected', async () => {
    const backend = make();
    const good = calls(Math.max(6, scale.calls / 2), 3, scale.maxLength);
    const expected = await sequentially(backend, good);
    const withNaN = randomTensor(64, 5);
    withNaN[40] = NaN;
    const bad: (() => { data: Float32Array[]; run: () => Promise<unknown> })[] = [
      () => {
        const d = withNaN.slice();
        return { data: [d], run: () => backend.fakeQuantize(d, { bits: 8, groups: 4 }) };
      },
      () => {
        const d = randomTensor(10, 6);
        return { data: [d], run: () => backend.fakeQuantize(d, { bits: 8, groups: 3 }) };
      },
      () => {
        const d = randomTensor(8, 7);
        return { data: [d], run: () => backend.fakeQuantize(d, { bits: 0 }) };
      },
      () => {
        const first = randomTensor(32, 8),
          second = withNaN.slice();
        return {
          data: [first, second],
          run: () =>
            backend.fakeQuantizeMany([
              { data: first, options: { bits: 4 } },
              { data: second, options: { bits: 2 } },
            ]),
        };
      },
    ];
    const work = copy(good);
    const failing = bad.map((make) => make());
    const before = failing.map(({ data }) => data.map((d) => d.slice()));
    const settled = await Promise.allSettled([
      ...work.map((call, i) => (i % 2 ? pause(i).then(() => backend.fakeQuantize(call.data, call.options)) : backend.fakeQuantize(call.data, call.options))),
      ...failing.map(({ run }, i) => pause(i).then(run)),
    ]);
    settled.slice(0, work.length).forEach((result, i) => expect(result.status, `good call ${i}`).toBe('fulfilled'));
    work.forEach((call, i) => expectSameBits(call.data, expected[i]!, `good call ${i}`));
    settled.slice(work.length).forEach((result, i) => {
      expect(result.status, `bad call ${i}`).toBe('rejected');
      expect((result as PromiseRejectedResult).reason).toBeInstanceOf(InvalidInputError);
      failing[i]!.data.forEach((d, j) => expectSameBits(d, before[i]![j]!, `bad call ${i}, array ${j}`));
    });
    // And the backend still works afterwards.
    const after = copy(good);
    for (const [i, call] of after.entries()) expectSameBits(await backend.fakeQuantize(call.data, call.options), expected[i]!, `call ${i} afterwards`);
  });

  it('a second step on one Quantizer while the first runs is refused; the first completes', async () => {
    const backend = make();
    const q = new Quantizer(QUANTIZER_OPTIONS[0]!, { backend });
    const reference = new Quantizer(QUANTIZER_OPTIONS[0]!, { backend });
    const params = model(20),
      alone = model(20);
    await reference.step([alone]);
    const first = q.step([params]);
    await expect(q.step([params])).rejects.toThrow(/a step is already running/);
    await first;
    expect(q.state()).toEqual(reference.state());
    params.forEach((p, i) => expectSameBits(p.data, alone[i]!.data, p.name));
  });
}

describe.each(['simd', 'scalar'] as const)('wasm %s', (build) => {
  let backend: WasmBackend;
  beforeAll(async () => {
    backend = await WasmBackend.create(build);
  });
  suite(() => backend, { calls: 60, maxLength: 5000, steps: 10 });

  it('in-place WasmTensors stay right while other calls grow the memory between awaits', async () => {
    const list = calls(20, 4, 3000);
    const expected = await sequentially(backend, list);
    const tensors = list.map((call) => backend.upload(call.data));
    try {
      await Promise.all([
        ...tensors.map(async (tensor, i) => {
          await pause(i);
          return backend.fakeQuantize(tensor.array, list[i]!.options);
        }),
        // Host calls large enough to grow the staging area (and so the memory) meanwhile.
        ...[1, 2, 3].map(async (k) => {
          await pause(k);
          return backend.fakeQuantize(randomTensor(k * 300_000, k), { bits: 8, groups: 4 });
        }),
      ]);
      tensors.forEach((tensor, i) => expectSameBits(tensor.array, expected[i]!, `tensor ${i}`));
    } finally {
      for (const tensor of tensors) tensor.free();
    }
  });
});

describe.skipIf(!gpuAvailable)('webgpu', () => {
  let backend: WebGpuBackend;
  beforeAll(async () => {
    backend = await WebGpuBackend.create({ gpu: testGpu() });
  });
  afterAll(() => backend?.dispose());
  // SwiftShader is slow: fewer and smaller calls.
  suite(() => backend, { calls: 16, maxLength: 2000, steps: 6 });

  it('ran everything on the GPU', () => {
    expect(backend.activeKind).toBe('webgpu');
    expect(backend.stats().wasmCalls).toBe(0);
  });
});
