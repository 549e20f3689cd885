// Packed data handed to unpack may come from a damaged or hostile file. Every packer (both
// WebAssembly builds, WebGPU from host arrays and from GPUBuffers) checks scales, zero points and
// codes in its kernel pass: a NaN, infinite or negative scale, a non-finite zero point, a code
// whose value overflows float32 or a ternary code 3 is an INVALID_ARGUMENT naming the first bad
// group, with nothing written to `out`; valid data, however extreme, decodes to finite values.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WasmBackend } from '../src/backends/wasm/backend.js';
import { WebGpuBackend } from '../src/backends/webgpu/backend.js';
import { InvalidInputError } from '../src/errors.js';
import { allocatePacked, planPack, type PackedTensor, type PackOptions } from '../src/packed/layout.js';
import { WasmPacker } from '../src/backends/wasm/packer.js';
import { WebGpuPacker } from '../src/backends/webgpu/packer.js';
import { uniforms } from './support/fixtures.js';
import { firstInvalidElement, layoutValueAt, setCodeAt } from './support/layout-reader.js';
import { bufferWith, readBuffer, testGpu, webgpuAvailable } from './support/webgpu.js';

const gpuAvailable = await webgpuAvailable();

const MAX = Math.fround(3.4028234663852886e38);
const TINY = 2 ** -149;
const GROUP_SIZE = 8;
const GROUPS = 5;
const LENGTH = GROUP_SIZE * GROUPS;
const SENTINEL = 7.5;

/** How unpack is called: on host arrays, or on GPUBuffers; resolves to what `out` holds after. */
interface Unpacker {
  name: string;
  /** Unpacks into an `out` filled with SENTINEL; returns the outcome and out's contents after the call. */
  run(packed: PackedTensor): Promise<{ error: unknown; out: Float32Array }>;
}

const unpackers: Unpacker[] = [];
const cleanups: (() => void)[] = [];

async function settle(call: Promise<unknown>): Promise<unknown> {
  try {
    await call;
    return null;
  } catch (error) {
    return error;
  }
}

beforeAll(async () => {
  for (const build of ['simd', 'scalar'] as const) {
    const backend = await WasmBackend.create(build);
    const packer = new WasmPacker(backend);
    cleanups.push(() => backend.dispose());
    unpackers.push({
      name: `wasm ${build}`,
      async run(packed) {
        const out = new Float32Array(packed.length).fill(SENTINEL);
        return { error: await settle(packer.unpack(packed, out)), out };
      },
    });
    unpackers.push({
      name: `wasm ${build}, out in WebAssembly memory`,
      async run(packed) {
        const tensor = backend.allocate(packed.length);
        tensor.array.fill(SENTINEL);
        const error = await settle(packer.unpack(packed, tensor.array));
        const out = tensor.array.slice();
        tensor.free();
        return { error, out };
      },
    });
  }
  if (!gpuAvailable) return;
  const backend = await WebGpuBackend.create({ gpu: testGpu() });
  const packer = await WebGpuPacker.create(backend);
  cleanups.push(
    () => packer.dispose(),
    () => backend.dispose(),
  );
  unpackers.push({
    name: 'webgpu',
    async run(packed) {
      const out = new Float32Array(packed.length).fill(SENTINEL);
      return { error: await settle(packer.unpack(packed, out)), out };
    },
  });
  unpackers.push({
    name: 'webgpu, GPUBuffers',
    async run(packed) {
      const onDevice = packer.upload(packed);
      const target = bufferWith(backend.device, new Float32Array(packed.length).fill(SENTINEL));
      const error = await settle(packer.unpackToBuffer(onDevice, target));
      const out = await readBuffer(backend.device, target, packed.length);
      for (const buffer of [target, onDevice.codes, onDevice.scales, onDevice.zeros]) buffer?.destroy();
      return { error, out };
    },
  });
});
afterAll(() => cleanups.forEach((cleanup) => cleanup()));

const TYPES: PackOptions[] = [
  { bits: 4 },
  { bits: 16 },
  { bits: 4, grid: 'full' },
  { bits: 16, grid: 'full' },
  { bits: 8, type: 'asymmetric' },
  { bits: 3, type: 'asymmetric' },
  { bits: 2 },
  { bits: 1 },
];

/** Valid packed data: scales 0.5, zero points -1, seeded codes (ternary 0..2). */
function validPacked(options: PackOptions, seed: number): PackedTensor {
  const packed = allocatePacked(planPack(LENGTH, { ...options, groupSize: GROUP_SIZE }));
  const next = uniforms(seed);
  const codes = packed.type === 'ternary' ? 3 : 2 ** packed.bits;
  for (let i = 0; i < LENGTH; i++) setCodeAt(packed.codes, packed.bits, i, Math.floor(next() * codes));
  packed.scales.fill(0.5);
  packed.zeros?.fill(-1);
  return packed;
}

/** The code of grid level `level` (symmetric codes are offset by 2^(b-1)). */
const codeOfLevel = (packed: PackedTensor, level: number) => (packed.type === 'symmetric' ? level + 2 ** (packed.bits - 1) : level);

/**
 * A damage to group g: returns the element the error must name, or null where the result
 * stays valid. `codes` sets every code of the group to the level of its first entry, then
 * element 3 to the second.
 */
/** A packed type, with symmetric codes on the full grid apart: their scales may be negative. */
type Kind = PackedTensor['type'] | 'full';

interface Damage {
  name: string;
  types: Kind[];
  reason: RegExp;
  apply(packed: PackedTensor, g: number): void;
  /** Element of the group (from its start) the error names: 0 for its scale and zero point. */
  element: number;
}

const SIGNED: Kind[] = ['symmetric', 'asymmetric', 'ternary', 'binary'];
const ALL: Kind[] = [...SIGNED, 'full'];

function setGroupLevels(packed: PackedTensor, g: number, level: number, atThree: number): void {
  for (let k = 0; k < GROUP_SIZE; k++) setCodeAt(packed.codes, packed.bits, g * GROUP_SIZE + k, codeOfLevel(packed, level));
  setCodeAt(packed.codes, packed.bits, g * GROUP_SIZE + 3, codeOfLevel(packed, atThree));
}

const DAMAGES: Damage[] = [
  {
    name: 'scale NaN',
    types: ALL,
    reason: /its scale is NaN, but a scale must be finite/,
    element: 0,
    apply: (p, g) => {
      p.scales[g] = NaN;
    },
  },
  {
    name: 'scale +Infinity',
    types: ALL,
    reason: /its scale is Infinity/,
    element: 0,
    apply: (p, g) => {
      p.scales[g] = Infinity;
    },
  },
  {
    name: 'scale -Infinity',
    types: ALL,
    reason: /its scale is -Infinity/,
    element: 0,
    apply: (p, g) => {
      p.scales[g] = -Infinity;
    },
  },
  {
    name: 'negative scale',
    types: SIGNED,
    reason: /its scale is -0\.5, but a scale must be finite and >= 0 \(negative scales are for codes on the full grid/,
    element: 0,
    apply: (p, g) => {
      p.scales[g] = -0.5;
    },
  },
  {
    name: 'negative subnormal scale',
    types: SIGNED,
    reason: /its scale is -1\.401298464324817e-45/,
    element: 0,
    apply: (p, g) => {
      p.scales[g] = -TINY;
    },
  },
  {
    name: 'zero point NaN',
    types: ['asymmetric'],
    reason: /its zero point is NaN, but a zero point must be finite/,
    element: 0,
    apply: (p, g) => {
      p.zeros![g] = NaN;
    },
  },
  {
    name: 'zero point -Infinity',
    types: ['asymmetric'],
    reason: /its zero point is -Infinity/,
    element: 0,
    apply: (p, g) => {
      p.zeros![g] = -Infinity;
    },
  },
  {
    name: 'a scale that overflows at the lowest symmetric code',
    types: ['symmetric', 'full'],
    element: 3,
    reason: /element \d+'s code 0 decodes beyond float32 \(scale 8\.507059173023462e\+37\)/,
    apply: (p, g) => {
      p.scales[g] = 2 ** 126;
      setGroupLevels(p, g, 1, -(2 ** (p.bits - 1)));
    },
  },
  {
    name: 'a negative scale that overflows at the lowest code',
    types: ['full'],
    element: 3,
    reason: /element \d+'s code 0 decodes beyond float32 \(scale -8\.507059173023462e\+37\)/,
    apply: (p, g) => {
      p.scales[g] = -(2 ** 126);
      setGroupLevels(p, g, 1, -(2 ** (p.bits - 1)));
    },
  },
  {
    name: 'a zero point near FLT_MAX plus a code',
    types: ['asymmetric'],
    element: 3,
    reason: /element \d+'s code \d+ decodes beyond float32 \(scale 1\.298074214633707e\+33, zero point 3\.4028234663852886e\+38\)/,
    apply: (p, g) => {
      p.scales[g] = 2 ** 110;
      p.zeros![g] = MAX;
      setGroupLevels(p, g, 0, 2 ** p.bits - 1);
    },
  },
  {
    name: 'a half-scale group (s >= 2^(127-b)) whose top code overflows',
    types: ['asymmetric'],
    element: 3,
    reason: /decodes beyond float32/,
    apply: (p, g) => {
      p.scales[g] = MAX;
      p.zeros![g] = 0;
      setGroupLevels(p, g, 1, 2 ** p.bits - 1);
    },
  },
  { name: 'ternary code 3', types: ['ternary'], reason: /element \d+ has code 3, but ternary codes are 0, 1 and 2/, element: 5, apply: (p, g) => setCodeAt(p.codes, 2, g * GROUP_SIZE + 5, 3) },
];

/** Damages that leave the data valid: extreme, yet every value is finite. */
const VALID: { name: string; types: Kind[]; apply(packed: PackedTensor, g: number): void }[] = [
  {
    name: 'scale -0',
    types: ALL,
    apply: (p, g) => {
      p.scales[g] = -0;
    },
  },
  {
    name: 'scale 0',
    types: ALL,
    apply: (p, g) => {
      p.scales[g] = 0;
    },
  },
  {
    name: 'the smallest subnormal scale',
    types: ALL,
    apply: (p, g) => {
      p.scales[g] = TINY;
    },
  },
  {
    name: 'scale FLT_MAX with codes of levels -1..1 only',
    types: ['symmetric', 'full', 'ternary', 'binary'],
    apply: (p, g) => {
      p.scales[g] = MAX;
      if (p.type === 'symmetric') setGroupLevels(p, g, 1, -1);
    },
  },
  {
    name: 'a negative scale',
    types: ['full'],
    apply: (p, g) => {
      p.scales[g] = -0.5;
    },
  },
  {
    name: 'the negative smallest subnormal scale',
    types: ['full'],
    apply: (p, g) => {
      p.scales[g] = -TINY;
    },
  },
  {
    name: 'scale -FLT_MAX with codes of levels -1..1 only',
    types: ['full'],
    apply: (p, g) => {
      p.scales[g] = -MAX;
      setGroupLevels(p, g, 1, -1);
    },
  },
  {
    name: 'scale -FLT_MAX/2^(b-1), the lowest code at FLT_MAX',
    types: ['full'],
    apply: (p, g) => {
      p.scales[g] = Math.fround(-MAX / 2 ** (p.bits - 1));
      setGroupLevels(p, g, 0, -(2 ** (p.bits - 1)));
    },
  },
  {
    name: 'a half-scale group at FLT_MAX whose codes stay finite',
    types: ['asymmetric'],
    apply: (p, g) => {
      p.scales[g] = MAX;
      p.zeros![g] = -MAX;
      setGroupLevels(p, g, 0, 1);
    },
  },
  {
    name: 'a zero point of ±FLT_MAX',
    types: ['asymmetric'],
    apply: (p, g) => {
      p.zeros![g] = g % 2 ? MAX : -MAX;
      p.scales[g] = 0;
    },
  },
];

const POSITIONS = [
  ['first', 0],
  ['middle', 2],
  ['last', GROUPS - 1],
] as const;

const copyOf = (packed: PackedTensor): PackedTensor => ({ ...packed, codes: packed.codes.slice(), scales: packed.scales.slice(), zeros: packed.zeros?.slice() ?? null });

function kindOf(options: PackOptions): Kind {
  const packed = allocatePacked(planPack(8, { ...options, groupSize: 8 }));
  return packed.grid === 'full' ? 'full' : packed.type;
}

/** Each change on every packing it applies to, in each group position. */
function rowsOf<Change extends { types: Kind[] }>(changes: readonly Change[]) {
  return changes.flatMap((change) => TYPES.filter((o) => change.types.includes(kindOf(o))).flatMap((options) => POSITIONS.map(([where, g]) => ({ change, options, kind: kindOf(options), where, g }))));
}

it('runs on every packer present', () => {
  expect(unpackers.length).toBe(gpuAvailable ? 6 : 4);
});

describe('unpack refuses damaged packed data, names the group and writes nothing', () => {
  it.each(rowsOf(DAMAGES))('$change.name, $options.bits bits $kind, $where group', async ({ change: damage, options, g }) => {
    const packed = validPacked(options, 11 * g + options.bits);
    damage.apply(packed, g);
    const element = g * GROUP_SIZE + damage.element;
    expect(firstInvalidElement(packed), 'the layout oracle').toBe(element);
    const before = copyOf(packed);
    for (const unpacker of unpackers) {
      const { error, out } = await unpacker.run(packed);
      expect(error, unpacker.name).toBeInstanceOf(InvalidInputError);
      expect(error, unpacker.name).toMatchObject({ code: 'INVALID_ARGUMENT', location: { group: g } });
      const message = (error as Error).message;
      expect(message, unpacker.name).toContain(`group ${g} (elements ${g * GROUP_SIZE}..${g * GROUP_SIZE + GROUP_SIZE - 1})`);
      expect(message, unpacker.name).toMatch(damage.reason);
      if (damage.element > 0) expect(message, unpacker.name).toContain(`element ${element}`);
      expect(
        out.every((v) => v === SENTINEL),
        `${unpacker.name}: out untouched`,
      ).toBe(true);
      expect(packed, `${unpacker.name}: packed untouched`).toEqual(before);
    }
  });

  it('names the first bad group when several are bad', async () => {
    const packed = validPacked({ bits: 2 }, 3);
    packed.scales[4] = NaN;
    setCodeAt(packed.codes, 2, 2 * GROUP_SIZE + 6, 3);
    packed.scales[2] = -1; // the scale of the same group comes before its codes
    for (const unpacker of unpackers) {
      const { error } = await unpacker.run(packed);
      expect(error, unpacker.name).toMatchObject({ location: { group: 2 } });
      expect((error as Error).message, unpacker.name).toMatch(/group 2 \(elements 16\.\.23\): its scale is -1/);
    }
  });

  // -2 is a valid scale on the full grid, an infinite one is not.
  it.each(TYPES)('finds the first bad group among thousands of groups of one: %o', async (options) => {
    const badScale = options.grid === 'full' ? -Infinity : -2;
    const packed = allocatePacked(planPack(9001, { ...options, groupSize: 1 }));
    packed.scales.fill(1);
    const code = packed.type === 'symmetric' ? 2 ** (packed.bits - 1) : 1;
    for (let i = 0; i < packed.length; i++) setCodeAt(packed.codes, packed.bits, i, code);
    // A WebGPU invocation checks groups 256 apart: 4356 and 7940 share one.
    for (const [bad, next] of [
      [7940, null],
      [4356, 7940],
      [9000, null],
    ] as const) {
      packed.scales[bad] = badScale;
      if (next !== null) packed.scales[next] = NaN;
      for (const unpacker of unpackers) {
        const { error } = await unpacker.run(packed);
        expect(error, `${unpacker.name}, group ${bad}`).toMatchObject({ code: 'INVALID_ARGUMENT', location: { group: bad } });
      }
      packed.scales.fill(1);
    }
  });

  it('ignores bits past the last code (a ternary 3 in the padding is no code)', async () => {
    const packed = allocatePacked(planPack(5, { bits: 2, groupSize: 5 }));
    packed.scales[0] = 1;
    packed.codes[1] = 0b11111100; // element 4 is code 0; the 6 bits after it are padding
    for (const unpacker of unpackers) {
      const { error, out } = await unpacker.run(packed);
      expect(error, unpacker.name).toBeNull();
      expect(Array.from(out), unpacker.name).toEqual([-1, -1, -1, -1, -1]);
    }
  });
});

describe('unpack accepts valid data at the edges and writes only finite values', () => {
  it.each(rowsOf(VALID))('$change.name, $options.bits bits $kind, $where group', async ({ change: valid, options, g }) => {
    const packed = validPacked(options, 7 * g + options.bits);
    valid.apply(packed, g);
    expect(firstInvalidElement(packed)).toBe(-1);
    const expected = Array.from({ length: LENGTH }, (_, i) => layoutValueAt(packed, i) + 0);
    for (const unpacker of unpackers) {
      const { error, out } = await unpacker.run(packed);
      expect(error, unpacker.name).toBeNull();
      expect(out.every(Number.isFinite), unpacker.name).toBe(true);
      // A device that flushes subnormals (WGSL allows it) may write 0 for a subnormal value.
      const mayFlush = unpacker.name.startsWith('webgpu');
      const wrong = expected.findIndex((v, i) => out[i]! + 0 !== v && !(mayFlush && Math.abs(v) < 2 ** -126 && out[i] === 0));
      expect(wrong, `${unpacker.name}: element ${wrong} is ${out[wrong]}, the layout gives ${expected[wrong]}`).toBe(-1);
    }
  });
});
