// The API against careless and hostile callers (issue 13, item 10): data that only looks like a
// Float32Array, detached arrays, views kept after WasmTensor.free(), createBackend called the
// wrong way, and saved quantizer states that could not run. Each gets a typed error that says
// what is wrong, and nothing is modified.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend } from '../src/backends/backend.js';
import { createBackend } from '../src/backends/select.js';
import { WasmBackend } from '../src/backends/wasm/backend.js';
import { WebGpuBackend } from '../src/backends/webgpu/backend.js';
import { BackendError, ConfigError, EdgeMoqError, InvalidInputError } from '../src/errors.js';
import { WasmPacker } from '../src/backends/wasm/packer.js';
import { Quantizer, type Parameter, type QuantizerState } from '../src/quantizer.js';
import { randomTensor } from './support/fixtures.js';
import { testGpu, webgpuAvailable } from './support/webgpu.js';

const gpuAvailable = await webgpuAvailable();

async function failure(run: () => unknown): Promise<EdgeMoqError> {
  try {
    await run();
  } catch (e) {
    if (e instanceof EdgeMoqError) return e;
    throw new Error(`expected an EdgeMoqError, got ${String(e)}`, { cause: e });
  }
  throw new Error('expected an error');
}

// ---------------------------------------------------------------------------------------------
// Data that is not a plain, live Float32Array, on every backend and entry point

class LongerThanItIs extends Float32Array {
  override get length(): number {
    return 100;
  }
}
class ThrowingLength extends Float32Array {
  override get length(): number {
    throw new Error('no length');
  }
}
class Honest extends Float32Array {}

function detached(): Float32Array {
  const array = randomTensor(8, 1);
  structuredClone(array.buffer, { transfer: [array.buffer] });
  return array;
}

const revoked = () => {
  const { proxy, revoke } = Proxy.revocable(new Float32Array(8), {});
  revoke();
  return proxy;
};

const BAD_DATA: { name: string; data: () => unknown; code: string; message: RegExp }[] = [
  { name: 'a Proxy of a Float32Array', data: () => new Proxy(randomTensor(8, 1), {}), code: 'WRONG_DTYPE', message: /passes instanceof Float32Array but is not one \(a Proxy/ },
  { name: 'a revoked Proxy', data: revoked, code: 'WRONG_DTYPE', message: /must be a Float32Array/ },
  { name: 'an object made from Float32Array.prototype', data: () => Object.create(Float32Array.prototype), code: 'WRONG_DTYPE', message: /passes instanceof Float32Array but is not one/ },
  {
    name: 'a subclass overriding length',
    data: () => LongerThanItIs.from(randomTensor(8, 1)),
    code: 'INVALID_ARGUMENT',
    message: /reports length 100 but holds 8 float32 values \(a subclass overriding length\?\)/,
  },
  { name: 'a subclass whose length throws', data: () => ThrowingLength.from(randomTensor(8, 1)), code: 'INVALID_ARGUMENT', message: /reports length .* but holds 8 float32 values/ },
  { name: 'a detached array (its buffer transferred)', data: detached, code: 'INVALID_ARGUMENT', message: /is detached: its ArrayBuffer was transferred/ },
];

interface Implementation {
  name: string;
  backend: () => Backend;
}
const implementations: Implementation[] = [];
const backends: Record<string, Backend> = {};
for (const kind of ['wasm-simd', 'wasm'] as const) implementations.push({ name: kind, backend: () => backends[kind]! });
if (gpuAvailable) implementations.push({ name: 'webgpu', backend: () => backends.webgpu! });

beforeAll(async () => {
  backends['wasm-simd'] = await WasmBackend.create('simd');
  backends.wasm = await WasmBackend.create('scalar');
  if (gpuAvailable) backends.webgpu = await WebGpuBackend.create({ gpu: testGpu() });
});
afterAll(() => {
  for (const backend of Object.values(backends)) backend.dispose();
});

// `host` is a good array quantized in the same call: it must be left as it was.
const ENTRY_POINTS: { name: string; call: (backend: Backend, data: unknown, host: Float32Array) => Promise<unknown>; label: RegExp }[] = [
  { name: 'fakeQuantize', call: (b, data) => b.fakeQuantize(data as Float32Array, { bits: 4 }), label: /^data / },
  {
    name: 'fakeQuantizeMany (second job)',
    call: (b, data, host) =>
      b.fakeQuantizeMany([
        { data: host, options: { bits: 4 } },
        { data: data as Float32Array, options: { bits: 4 } },
      ]),
    label: /^jobs\[1\]\.data /,
  },
  { name: 'groupStats', call: (b, data) => b.groupStats(data as Float32Array, { groups: 1 }), label: /^data / },
  {
    name: 'Quantizer.step',
    call: (b, data) => new Quantizer({}, { backend: b }).step([{ name: 'w', shape: [2, 4], data: data as Float32Array }]),
    label: /^parameter "w": data /,
  },
];

describe.each(implementations)('$name', ({ backend }) => {
  describe.each(ENTRY_POINTS)('$name', ({ call, label }) => {
    it.each(BAD_DATA)('refuses $name with a typed error', async ({ data, code, message }) => {
      const host = randomTensor(8, 2);
      const error = await failure(() => call(backend(), data(), host));
      expect(error).toBeInstanceOf(InvalidInputError);
      expect(error.code).toBe(code);
      expect(error.message).toMatch(label);
      expect(error.message).toMatch(message);
      expect(host).toEqual(randomTensor(8, 2));
    });

    it('takes a subclass of Float32Array that keeps its length', async () => {
      await expect(call(backend(), Honest.from(randomTensor(8, 3)), randomTensor(8, 2))).resolves.not.toThrow();
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Views into WebAssembly memory that no live tensor holds

describe.each(['simd', 'scalar'] as const)('views into WebAssembly memory (%s build)', (build) => {
  let backend: WasmBackend;
  beforeAll(async () => {
    backend = await WasmBackend.create(build);
  });

  const STALE: { name: string; make: (b: WasmBackend) => { view: Float32Array; reused: Float32Array | null }; message: RegExp }[] = [
    {
      name: "the view tensor.array gave, after free(), its memory now another tensor's",
      make: (b) => {
        const freed = b.upload(randomTensor(64, 4));
        const view = freed.array;
        freed.free();
        const next = b.upload(randomTensor(64, 5));
        expect(next.byteOffset).toBe(freed.byteOffset);
        return { view, reused: next.array };
      },
      message: /is the view of a WasmTensor that was freed: its memory may now hold another tensor/,
    },
    {
      name: 'a subarray of a freed tensor',
      make: (b) => {
        const freed = b.upload(randomTensor(64, 6));
        const view = freed.array.subarray(8, 40);
        freed.free();
        return { view, reused: null };
      },
      message: /views WebAssembly memory that no live WasmTensor holds \(bytes \d+\.\.\d+\): its tensor was freed/,
    },
    {
      name: 'a view made by hand over memory no tensor holds',
      make: (b) => ({ view: new Float32Array(b.internals.kernels.memory.buffer, 0, 16), reused: null }),
      message: /views WebAssembly memory that no live WasmTensor holds/,
    },
    {
      name: 'a view across two live tensors',
      make: (b) => {
        const first = b.upload(randomTensor(16, 7));
        b.upload(randomTensor(16, 8));
        return { view: new Float32Array(b.internals.kernels.memory.buffer, first.byteOffset, 32), reused: null };
      },
      message: /views WebAssembly memory that no live WasmTensor holds/,
    },
  ];

  const CALLS: { name: string; call: (b: WasmBackend, view: Float32Array, host: Float32Array) => unknown; label: string }[] = [
    { name: 'fakeQuantizeSync', call: (b, view) => b.fakeQuantizeSync(view, { bits: 4, groups: 4 }), label: 'data' },
    {
      name: 'fakeQuantizeMany',
      call: (b, view, host) =>
        b.fakeQuantizeMany([
          { data: host, options: { bits: 4 } },
          { data: view, options: { bits: 4, groups: 4 } },
        ]),
      label: 'jobs[1].data',
    },
    { name: 'groupStats', call: (b, view) => b.groupStats(view, { groups: 4 }), label: 'data' },
    { name: 'WasmPacker.pack', call: (b, view) => new WasmPacker(b).packSync(view, { bits: 4, groups: 4 }), label: 'data' },
    {
      name: 'WasmPacker.unpack into',
      call: (b, view) => {
        const packer = new WasmPacker(b);
        return packer.unpackSync(packer.packSync(randomTensor(view.length, 11), { bits: 4, groups: 4 }), view);
      },
      label: 'out',
    },
  ];

  describe.each(CALLS)('$name', ({ call, label }) => {
    it.each(STALE)('refuses $name and modifies nothing', async ({ make, message }) => {
      const { view, reused } = make(backend);
      const host = randomTensor(32, 9);
      const before = [host.slice(), reused ? reused.slice() : null];
      const error = await failure(() => call(backend, view, host));
      expect(error).toBeInstanceOf(InvalidInputError);
      expect(error.message.startsWith(`${label} `)).toBe(true);
      expect(error.message).toMatch(message);
      expect([host, reused]).toEqual(before);
    });
  });

  it('quantizes a subarray of a live tensor in place', () => {
    const values = randomTensor(64, 10);
    const tensor = backend.upload(values);
    const expected = backend.fakeQuantizeSync(values.slice(16, 48), { bits: 5, groups: 2 });
    backend.fakeQuantizeSync(tensor.array.subarray(16, 48), { bits: 5, groups: 2 });
    expect(tensor.array.subarray(16, 48)).toEqual(expected);
    expect(tensor.array.subarray(0, 16)).toEqual(values.subarray(0, 16));
    tensor.free();
  });

  it('says a view detached by memory growth is detached, not empty', () => {
    const tensor = backend.upload(randomTensor(64, 11));
    const old = tensor.array;
    backend.allocate(1 << 22); // grows the memory
    expect(() => backend.fakeQuantizeSync(old, { bits: 4 })).toThrow(/^data is detached: .*WebAssembly memory that has grown since; .*read tensor\.array again/);
    expect(() => backend.fakeQuantizeSync(tensor.array, { bits: 4 })).not.toThrow();
  });
});

// ---------------------------------------------------------------------------------------------
// createBackend called the wrong way

describe('createBackend', () => {
  it.each(['wasm-simd', 'wasm', 'auto'] as const)('takes the kind alone: createBackend(%j)', async (kind) => {
    const backend = await createBackend(kind);
    expect(backend.selection.requested).toBe(kind);
    backend.dispose();
  });

  it("createBackend('webgpu') asks for WebGPU: Node has no navigator.gpu, and it says so (it once gave wasm-simd)", async () => {
    expect((globalThis as { navigator?: { gpu?: unknown } }).navigator?.gpu).toBeUndefined();
    const error = await failure(() => createBackend('webgpu'));
    expect(error).toBeInstanceOf(BackendError);
    expect(error.message).toMatch(/backend "webgpu" is not available here/);
  });

  it.each([
    ['a number', 5, /createBackend takes options such as \{ kind: 'webgpu' \} \(or just the kind, 'webgpu'\), got 5/],
    ['null', null, /createBackend takes options .*got null/],
    ['an array', ['webgpu'], /createBackend takes options .*got \["webgpu"\]/],
    ['a function', () => 'webgpu', /createBackend takes options .*got function/],
    ['an unknown kind', 'cuda', /kind must be one of auto, wasm-simd, wasm, webgpu, got "cuda"/],
    ['a misspelt key', { knd: 'webgpu' }, /unknown createBackend option "knd"; known options: kind, stagingBytes, wasm, gpu, adapter, device, crossoverElements/],
    ['wasm as a string', { wasm: '/edge-moq-simd.wasm' }, /wasm must be \{ simd\?, scalar\? \}/],
    ['a BigInt crossover', { crossoverElements: 10n }, /crossoverElements must be a non-negative integer, got 10n/],
    ['a kind of another type', { kind: Object.create(null) }, /kind must be one of/],
  ])('refuses %s with an InvalidInputError', async (_what, options, message) => {
    const error = await failure(() => createBackend(options as never));
    expect(error).toBeInstanceOf(InvalidInputError);
    expect(error.message).toMatch(message);
  });

  it.each([
    ['an unknown build', () => WasmBackend.create('avx' as never), /build must be 'simd' or 'scalar', got "avx"/],
    ['options that are not an object', () => WasmBackend.create('simd', undefined, 64 as never), /options must be \{ stagingBytes\? \}, got 64/],
    ['an unknown option', () => WasmBackend.create('simd', undefined, { staging: 64 } as never), /options must be \{ stagingBytes\? \}/],
  ])('WasmBackend.create refuses %s', async (_what, run, message) => {
    const error = await failure(run);
    expect(error).toBeInstanceOf(InvalidInputError);
    expect(error.message).toMatch(message);
  });
});

// ---------------------------------------------------------------------------------------------
// Saved quantizer states

describe('Quantizer.restore', () => {
  let backend: WasmBackend;
  let saved: QuantizerState;
  const params = (): Parameter[] => [
    { name: 'enc.weight', shape: [8, 8], data: randomTensor(64, 12) },
    { name: 'enc.bias', shape: [8], data: randomTensor(8, 13) },
  ];
  beforeAll(async () => {
    backend = await WasmBackend.create('simd');
    const q = new Quantizer({ groups: 2, schedules: [{ startBits: 8, targetBits: 4, period: 1, modules: ['weight'] }] }, { backend });
    const p = params();
    for (let i = 0; i < 3; i++) await q.step([p]);
    saved = JSON.parse(JSON.stringify(q.state()));
  });

  // biome-ignore lint/suspicious/noExplicitAny: a saved state as JSON.parse gives it back, which each case corrupts at a different depth with a value of the wrong type
  type State = Record<string, any>;
  const CASES: [string, (s: State) => void, typeof InvalidInputError | typeof ConfigError, RegExp][] = [
    [
      'bits 100',
      (s) => {
        s.parameters['enc.weight'].bits = 100;
      },
      InvalidInputError,
      /^state\.parameters\["enc\.weight"\]\.bits must be an integer from 1 to 16, got 100/,
    ],
    [
      'targetBits 0',
      (s) => {
        s.parameters['enc.weight'].targetBits = 0;
      },
      InvalidInputError,
      /\["enc\.weight"\]\.targetBits must be an integer from 1 to 16, got 0/,
    ],
    [
      'bits below targetBits',
      (s) => {
        s.parameters['enc.weight'].bits = 3;
      },
      InvalidInputError,
      /\.bits must be at least targetBits \(4\)/,
    ],
    [
      'a fractional period',
      (s) => {
        s.parameters['enc.weight'].period = 1.5;
      },
      InvalidInputError,
      /\.period must be an integer from 1 to 2\^53-1, got 1\.5/,
    ],
    [
      'an infinite period',
      (s) => {
        s.parameters['enc.weight'].period = Infinity;
      },
      InvalidInputError,
      /\.period must be .*got (Infinity|null)/,
    ], // JSON writes null
    [
      'a period beyond 2^53',
      (s) => {
        s.parameters['enc.weight'].period = 2 ** 60;
      },
      InvalidInputError,
      /\.period must be an integer from 1 to 2\^53-1/,
    ],
    [
      'quantized as a string',
      (s) => {
        s.parameters['enc.weight'].quantized = 'yes';
      },
      InvalidInputError,
      /\.quantized must be true or false, got "yes"/,
    ],
    [
      'an unknown parameter key',
      (s) => {
        s.parameters['enc.weight'].bitz = 4;
      },
      InvalidInputError,
      /\["enc\.weight"\]\.bitz is not part of a quantizer state/,
    ],
    [
      'a ternary state under asymmetric options',
      (s) => {
        s.options.type = 'asymmetric';
        s.parameters['enc.weight'].targetBits = 2;
        s.parameters['enc.weight'].bits = 2;
      },
      InvalidInputError,
      /\.targetBits must be at least 3 under asymmetric grids/,
    ],
    [
      'no options',
      (s) => {
        delete s.options;
      },
      InvalidInputError,
      /^state\.options is missing: .*continue under other defaults/,
    ],
    [
      'options without groups',
      (s) => {
        delete s.options.groups;
      },
      ConfigError,
      /^state\.options\.groups: is missing/,
    ],
    [
      'eigenvalue options without maxIter',
      (s) => {
        delete s.options.eigenvalue.maxIter;
      },
      ConfigError,
      /^state\.options\.eigenvalue\.maxIter: is missing/,
    ],
    [
      'invalid options',
      (s) => {
        s.options.groups = 0;
      },
      ConfigError,
      /^state\.options\.groups: must be at least 1/,
    ],
    [
      'a module pattern that needs backtracking',
      (s) => {
        s.options.schedules[0].modules = ['(w)\\1'];
      },
      ConfigError,
      /^state\.options\.schedules\[0\]\.modules\[0\]: .*backreference/,
    ],
    [
      'a negative qsteps',
      (s) => {
        s.qsteps = -1;
      },
      InvalidInputError,
      /^state\.qsteps must be an integer from 0 to 2\^53-1, got -1/,
    ],
    [
      'qsteps beyond 2^53',
      (s) => {
        s.qsteps = 2 ** 53;
      },
      InvalidInputError,
      /^state\.qsteps must be/,
    ],
    [
      'offsetSteps as text',
      (s) => {
        s.offsetSteps = '2';
      },
      InvalidInputError,
      /^state\.offsetSteps must be .*got "2"/,
    ],
    [
      'a ratio above 1',
      (s) => {
        s.ratio = 2;
      },
      InvalidInputError,
      /^state\.ratio must be a number from 0 to 1, got 2/,
    ],
    [
      'no parameters',
      (s) => {
        delete s.parameters;
      },
      InvalidInputError,
      /^state\.parameters must be an object .*got undefined/,
    ],
    [
      'parameters as an array',
      (s) => {
        s.parameters = [];
      },
      InvalidInputError,
      /^state\.parameters must be an object/,
    ],
    [
      'an unknown key',
      (s) => {
        s.qstep = 3;
      },
      InvalidInputError,
      /^state\.qstep is not part of a quantizer state; known keys: format, options/,
    ],
  ];

  it.each(CASES)('refuses a state with %s, naming the field', (_what, mutate, type, message) => {
    const state = structuredClone(saved) as State;
    mutate(state);
    for (const form of [state, JSON.stringify(state)]) {
      let error: unknown;
      try {
        Quantizer.restore(form as QuantizerState, { backend });
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(type);
      expect((error as Error).message).toMatch(message);
    }
  });

  it('restores the saved state itself, and it runs', async () => {
    const q = Quantizer.restore(structuredClone(saved), { backend });
    expect(q.state()).toEqual(saved);
    await expect(q.step([params()])).resolves.toMatchObject({ quantized: true });
  });

  // DeepSpeed multiplies the doubled period by 1 + floor(4 * eigenvalue): any finite eigenvalue
  // is accepted, and the period is capped at 2^53-1 (no step count reaches it), so it stays an
  // exact integer that saves and restores.
  it.each([1e308, Number.MAX_VALUE, 1e300, 2 ** 52, 0.75])('an eigenvalue of %d leaves a state that saves, restores and runs', async (eigenvalue) => {
    const q = new Quantizer({ schedules: [{ startBits: 8, targetBits: 3, period: 1 }] }, { backend });
    const p = params();
    await q.step([p], { eigenvalueEnabled: true, blockEigenvalue: { 'enc.weight': [eigenvalue, 0] } });
    const period = q.periodOf('enc.weight')!;
    expect(period).toBe(Math.min(2 * (1 + Math.floor(4 * eigenvalue)), Number.MAX_SAFE_INTEGER));
    const restored = Quantizer.restore(JSON.parse(JSON.stringify(q.state())), { backend });
    expect(restored.state()).toEqual(q.state());
    await q.step([p], { eigenvalueEnabled: true, blockEigenvalue: { 'enc.weight': [eigenvalue, 0] } });
    expect(Number.isSafeInteger(q.periodOf('enc.weight'))).toBe(true);
    expect(Quantizer.restore(JSON.parse(JSON.stringify(q.state()))).state()).toEqual(q.state());
  });

  it.each([
    ['asymmetric', { type: 'asymmetric' }],
    ['stochastic', { rounding: 'stochastic' }],
  ])('refuses a schedule that would reach 1 or 2 bits under %s options (every step after the switch would fail)', (_what, grid) => {
    expect(() => new Quantizer({ ...grid, schedules: [{ startBits: 4, targetBits: 2, period: 1 }] } as never)).toThrow(expect.objectContaining({ key: 'options.schedules[0].targetBits' }));
    expect(() => new Quantizer({ ...grid, parameters: { w: { startBits: 3, targetBits: 1, period: 1 } } } as never)).toThrow(
      /options\.parameters\.w\.targetBits: 1 bits \(binary\) are symmetric with nearest rounding only/,
    );
  });
});
