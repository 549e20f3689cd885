// The MoQ schedule beyond what the vectors pin: events and DeepSpeed's verbose line, resuming
// from JSON state, anyPrecisionSwitch, and failed steps that change nothing.

import { beforeAll, describe, expect, it } from 'vitest';
import { WasmBackend } from '../src/backends/wasm/backend.js';
import { Quantizer, type Parameter, type PrecisionSwitch } from '../src/quantizer.js';
import { InvalidInputError } from '../src/errors.js';
import { MOQ_OPTIONS, randomTensor } from './support/fixtures.js';

let backend: WasmBackend;
beforeAll(async () => {
  backend = await WasmBackend.create('simd');
});

function model(seed: number): Parameter[] {
  return [
    { name: 'encoder.weight', shape: [16, 32], data: randomTensor(512, seed) },
    { name: 'encoder.bias', shape: [32], data: randomTensor(32, seed + 1) },
    { name: 'decoder.weight', shape: [32, 8], data: randomTensor(256, seed + 2) },
  ];
}

const OPTIONS = MOQ_OPTIONS;

function perturb(params: Parameter[], step: number): void {
  for (const p of params) {
    const noise = randomTensor(p.data.length, 1000 + step, 1e-2);
    for (let i = 0; i < p.data.length; i++) p.data[i] = Math.fround(p.data[i]! + noise[i]!);
  }
}

describe('Quantizer', () => {
  it('with into, writes each step where into says and leaves the masters as they were', async () => {
    const inPlace = new Quantizer(OPTIONS, { backend });
    const outOfPlace = new Quantizer(OPTIONS, { backend });
    const params = model(40);
    const masters = model(40);
    const into = masters.map((p) => new Float32Array(p.data.length).fill(9));
    for (let step = 0; step < 5; step++) {
      perturb(params, step);
      perturb(masters, step);
      const snapshot = masters.map((p) => p.data.slice());
      const a = await inPlace.step(params);
      const b = await outOfPlace.step(masters.map((p, i) => ({ ...p, into: into[i]! })));
      expect(b).toEqual(a);
      expect(masters.map((p) => p.data)).toEqual(snapshot);
      expect(into[0]).toEqual(params[0]!.data);
      expect(into[2]).toEqual(params[2]!.data);
      // The 1-D bias is scheduled but never quantized: its into is not written.
      expect(into[1]!.every((x) => x === 9)).toBe(true);
      // The in-place run goes on from its quantized values, as the masters would in training.
      params.forEach((p, i) => p.data.set(masters[i]!.data));
    }
  });

  it("emits an event and DeepSpeed's verbose line at every switch", async () => {
    const lines: string[] = [];
    const events: PrecisionSwitch[] = [];
    const q = new Quantizer({ ...OPTIONS, verbose: true }, { backend, logger: (l) => lines.push(l) });
    q.onSwitch((e) => events.push(e));
    const params = model(1);
    for (let step = 0; step < 8; step++) await q.step([params]);
    // period 2 -> switches at qsteps 2 (period 4), 4 (period 8), 8 (period 16), per weight.
    expect(events.map((e) => [e.name, e.bits, e.step, e.period])).toEqual([
      ['encoder.weight', 7, 2, 4],
      ['decoder.weight', 7, 2, 4],
      ['encoder.weight', 6, 4, 8],
      ['decoder.weight', 6, 4, 8],
      ['encoder.weight', 5, 8, 16],
      ['decoder.weight', 5, 8, 16],
    ]);
    expect(lines[0]).toBe('Quantization settings: current bit-precision = 7, step = 2, quantization period = 4, index = 0');
    expect(q.bitsOf('encoder.bias')).toBeUndefined();
  });

  it('resumes from JSON state mid-schedule on the exact same trajectory', async () => {
    const straight = new Quantizer(OPTIONS, { backend });
    const a = model(3);
    const b = model(3);
    let resumed = new Quantizer(OPTIONS, { backend });
    for (let step = 0; step < 12; step++) {
      perturb(a, step);
      perturb(b, step);
      await straight.step([a], { overflow: step === 4 });
      await resumed.step([b], { overflow: step === 4 });
      if (step === 5) resumed = Quantizer.restore(JSON.parse(JSON.stringify(resumed.state())), { backend });
      expect(b.map((p) => Array.from(p.data))).toEqual(a.map((p) => Array.from(p.data)));
    }
    expect(resumed.state()).toEqual(straight.state());
  });

  it('skips overflow steps without counting them, unless eigenvalues are on', async () => {
    const q = new Quantizer(OPTIONS, { backend });
    const params = model(4);
    const before = params.map((p) => p.data.slice());
    expect(await q.step([params], { overflow: true })).toMatchObject({ quantized: false, qsteps: 0 });
    expect(params.map((p) => p.data)).toEqual(before);
    expect(await q.step([params], { overflow: true, eigenvalueEnabled: true })).toMatchObject({ quantized: true, qsteps: 1 });
  });

  it('multiplies the new period by 1 + floor(4 * eigenvalue) and logs the block id', async () => {
    const events: PrecisionSwitch[] = [];
    const q = new Quantizer({ schedules: [{ startBits: 8, targetBits: 4, period: 1 }] }, { backend });
    q.onSwitch((e) => events.push(e));
    const params = model(5);
    await q.step([params], { eigenvalueEnabled: true, blockEigenvalue: { 'encoder.weight': [0.6, 3], 'decoder.weight': null } });
    expect(q.periodOf('encoder.weight')).toBe(2 * 3);
    expect(q.periodOf('decoder.weight')).toBe(2);
    expect(events.map((e) => e.index)).toEqual([3, 0]);
  });

  it('says when a precision switch is due', async () => {
    const q = new Quantizer({ scheduleOffset: 1, schedules: [{ startBits: 8, targetBits: 7, period: 2 }] }, { backend });
    const params = model(6);
    expect(q.anyPrecisionSwitch()).toBe(false);
    expect(q.anyPrecisionSwitch(3)).toBe(true);
    await q.step([params]); // inside the offset
    await q.step([params]); // qsteps 1
    expect(q.anyPrecisionSwitch()).toBe(true);
    await q.step([params]); // qsteps 2: 8 -> 7, the target
    expect(q.anyPrecisionSwitch(100)).toBe(false);
  });

  it('changes neither data nor schedule when a step fails', async () => {
    const q = new Quantizer(OPTIONS, { backend });
    const params = model(7);
    await q.step([params]);
    const state = q.state();
    params[2]!.data[17] = NaN;
    const before = params.map((p) => p.data.slice());
    await expect(q.step([params])).rejects.toThrow(/parameter "decoder.weight"\[17\] is NaN/);
    expect(q.state()).toEqual(state);
    expect(params.map((p) => p.data)).toEqual(before);
  });

  it.each([
    [{ name: 'w', shape: [3, 3], data: new Float32Array(8) }, /shape \[3, 3\] holds 9 elements but data has 8/],
    [{ name: 'w', shape: [2, 2], data: new Float64Array(4) }, /must be a Float32Array/],
    [{ name: '', shape: [1], data: new Float32Array(1) }, /each parameter must be/],
  ])('rejects a malformed parameter', async (param, message) => {
    const q = new Quantizer(OPTIONS, { backend });
    await expect(q.step([[param as never]])).rejects.toThrow(InvalidInputError);
    await expect(q.step([[param as never]])).rejects.toThrow(message);
  });

  it('rejects a state that is not one', () => {
    expect(() => Quantizer.restore({ format: 'x' } as never)).toThrow(/not a quantizer state/);
    const bad = { ...new Quantizer(OPTIONS).state(), ratio: 2 };
    expect(() => Quantizer.restore(bad)).toThrow(/state.ratio/);
  });
});

describe('Quantizer errors', () => {
  it('name the parameter as the backend builds the message, and locate it: job, index, group', async () => {
    const q = new Quantizer(OPTIONS, { backend });
    const params = model(3);
    params[2]!.data[130] = -Infinity;
    const error = await q.step([params]).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(InvalidInputError);
    expect(error).toMatchObject({
      code: 'NON_FINITE',
      message: expect.stringMatching(/^parameter "decoder\.weight"\[130\] is -Infinity: quantization needs finite values/),
      // The quantized parameters are encoder.weight and decoder.weight, in that order; groups of 256 / 4.
      location: { job: 1, index: 130, group: 2 },
    });
  });

  it('come from a backend unchanged: a job labelled by its caller is named so, and an unlabelled one by its place', async () => {
    const good = randomTensor(64, 1);
    const bad = randomTensor(64, 2);
    bad[5] = NaN;
    await expect(
      backend.fakeQuantizeMany([
        { data: good, options: { bits: 8 } },
        { data: bad, options: { bits: 8 }, label: 'tensor "x"' },
      ]),
    ).rejects.toMatchObject({ code: 'NON_FINITE', message: expect.stringMatching(/^tensor "x"\[5\] is NaN/), location: { job: 1, index: 5, group: 0 } });
    await expect(
      backend.fakeQuantizeMany([
        { data: good, options: { bits: 8 } },
        { data: bad, options: { bits: 8 } },
      ]),
    ).rejects.toMatchObject({ message: expect.stringMatching(/^jobs\[1\]\.data\[5\] is NaN/), location: { job: 1, index: 5, group: 0 } });
    await expect(backend.fakeQuantizeMany([{ data: good, options: { bits: 8 }, label: 7 as never }])).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: expect.stringMatching(/jobs\[0\]\.label must be a string/),
    });
  });
});
