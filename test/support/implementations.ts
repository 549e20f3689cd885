// Every implementation of the Backend and Packer contracts, made through the public API
// (createBackend, createPacker), for the suites in test/contracts/ to run one list of cases over
// all of them, and the reader of the case files in test/cases/.
//
// WebGPU runs twice: on a device with the `subgroups` feature where the adapter offers it, and
// on one without, where the reductions go through workgroup memory. Where Dawn finds no adapter
// the WebGPU implementations are missing: test/support/runtimes.ts records the skip locally and
// fails the run under CI=true.

import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, expect } from 'vitest';
import { CHUNK_SIZE, SMALL_GROUP_MAX } from '../../src/backends/webgpu/plan.js';
import {
  BackendError,
  ConfigError,
  createBackend,
  EdgeMoqError,
  FormatError,
  InvalidInputError,
  WasmBackend,
  WebGpuBackend,
  type Backend,
  type ErrorCode,
  type ErrorLocation,
} from '../../src/index.js';
import { createPacker, type Packer } from '../../src/packed/index.js';
import { randomTensor } from './fixtures.js';
import { testDevice, testGpu, webgpuAvailable } from './webgpu.js';

export type ImplementationName = 'wasm-simd' | 'wasm' | 'webgpu' | 'webgpu without subgroups';

export interface Implementation {
  name: ImplementationName;
  /** The kind its backend and packer report. */
  kind: Backend['kind'];
  /**
   * Whether subnormal values, scales and results survive. WebAssembly forbids flushing them;
   * WGSL lets a GPU flush them to zero (SwiftShader does), so cases that need them run only where
   * this is true.
   */
  keepsSubnormals: boolean;
  /**
   * How far (relative) the mean |x| of a group of a million float32 values may be from the
   * float64 mean. GPU reductions add in a tree and stay within the conformance rule's 1e-6; the
   * WebAssembly kernels keep 16 running sums of some 75,000 terms each, which drift by 1.7e-6
   * on test/contracts/backend.test.ts's million-element group.
   */
  largeMeanTolerance: number;
  /**
   * The bit widths the long sweeps (every group layout, every variant) cover. WebGPU without
   * subgroups differs from WebGPU only in how a group is reduced (workgroup memory instead of
   * subgroup operations), so it sweeps the widths that reduce differently: the binary and
   * ternary means, and a narrow and a wide grid. SwiftShader runs them on the CPU, slowly.
   */
  sweepBits: readonly number[];
  /** Whether it runs here. */
  present: boolean;
}

export interface ImplementationUnderTest {
  backend: Backend;
  packer: Packer;
}

const gpuPresent = await webgpuAvailable();

const ALL_BITS = Array.from({ length: 16 }, (_, i) => i + 1);

export const IMPLEMENTATIONS: readonly Implementation[] = [
  { name: 'wasm-simd', kind: 'wasm-simd', keepsSubnormals: true, largeMeanTolerance: 1e-5, sweepBits: ALL_BITS, present: true },
  { name: 'wasm', kind: 'wasm', keepsSubnormals: true, largeMeanTolerance: 1e-5, sweepBits: ALL_BITS, present: true },
  { name: 'webgpu', kind: 'webgpu', keepsSubnormals: false, largeMeanTolerance: 1e-6, sweepBits: ALL_BITS, present: gpuPresent },
  { name: 'webgpu without subgroups', kind: 'webgpu', keepsSubnormals: false, largeMeanTolerance: 1e-6, sweepBits: [1, 2, 3, 8], present: gpuPresent },
];

/**
 * The group sizes where the WebGPU kernels change path (src/backends/webgpu/plan.ts): groups up
 * to SMALL_GROUP_MAX take one invocation each, larger ones a workgroup per CHUNK_SIZE elements.
 * The case files write sizes around them as numbers; the suites check that they still straddle.
 */
export const GPU_GROUP_BOUNDARIES = { SMALL_GROUP_MAX, CHUNK_SIZE } as const;

/** The implementation the others are compared with where a case has no independent oracle. */
export const REFERENCE = IMPLEMENTATIONS[0]!;

async function open(implementation: Implementation): Promise<ImplementationUnderTest & { device?: GPUDevice }> {
  switch (implementation.name) {
    case 'wasm-simd':
    case 'wasm': {
      const backend = await createBackend(implementation.name);
      return { backend, packer: await createPacker(backend) };
    }
    case 'webgpu': {
      const backend = await createBackend({ kind: 'webgpu', gpu: testGpu() });
      return { backend, packer: await createPacker(backend) };
    }
    case 'webgpu without subgroups': {
      const device = await testDevice(false);
      const backend = await createBackend({ kind: 'webgpu', gpu: testGpu(), device });
      return { backend, packer: await createPacker(backend), device };
    }
  }
}

/**
 * For a describe block: the implementation's backend and packer, created before its tests and
 * disposed after them (compiling the WebGPU kernels takes seconds on SwiftShader, so once per
 * block). Read the fields inside the tests.
 */
export function useImplementation(implementation: Implementation): ImplementationUnderTest {
  const context = {} as ImplementationUnderTest & { device?: GPUDevice };
  beforeAll(async () => {
    Object.assign(context, await open(implementation));
  });
  afterAll(() => {
    context.packer?.dispose();
    context.backend?.dispose();
    context.device?.destroy();
  });
  return context;
}

/** The kind that ran the backend's last calls: a WebGPU backend that lost its device reports WebAssembly. */
export function ranOn(backend: Backend): Backend['kind'] {
  return backend instanceof WebGpuBackend ? backend.activeKind : backend.kind;
}

/** Whether a WebGPU backend's reductions use the `subgroups` feature. */
export function usesSubgroups(backend: Backend): boolean {
  return backend instanceof WebGpuBackend && backend.usesSubgroups;
}

let noiseSource: Promise<WasmBackend> | undefined;

/**
 * The offsets p that stochastic rounding adds to elements [first, first + length) of the stream
 * (seed, step, tensorId): src/noise.ts, drawn by the WebAssembly kernels. Every implementation
 * must draw these; the formulas of test/contracts/backend.test.ts add them.
 */
export async function noiseOffsets(length: number, stream: { seed: number; step: number; tensorId: number }, first = 0): Promise<Float32Array> {
  noiseSource ??= WasmBackend.create('simd');
  return (await noiseSource).noiseOffsets(length, stream, first);
}

// ---------------------------------------------------------------------------------------------
// The case files. JSON holds no NaN, ±Inf or -0, and no float32 it does not round: values are
// numbers (rounded once to float32), or the strings "NaN", "Infinity", "-Infinity", "-0", or a
// float32 bit pattern such as "0x00000001" (the smallest subnormal).

export type CaseValue = number | string;

/** One value of a case file, as a float32. */
export function caseValue(value: CaseValue): number {
  if (typeof value === 'number') return Math.fround(value);
  if (value === 'NaN') return Number.NaN;
  if (value === 'Infinity') return Number.POSITIVE_INFINITY;
  if (value === '-Infinity') return Number.NEGATIVE_INFINITY;
  if (value === '-0') return -0;
  if (/^0x[0-9a-f]{8}$/i.test(value)) return new Float32Array(Uint32Array.of(Number.parseInt(value, 16)).buffer)[0]!;
  throw new Error(`a case value must be a number, "NaN", "Infinity", "-Infinity", "-0" or a float32 bit pattern "0x…", got ${JSON.stringify(value)}`);
}

export function caseValues(values: readonly CaseValue[]): Float32Array {
  return Float32Array.from(values, caseValue);
}

/** A file of test/cases/, parsed. */
export function readCases<T>(file: string): T {
  return JSON.parse(readFileSync(new URL(`../cases/${file}`, import.meta.url), 'utf8')) as T;
}

// ---------------------------------------------------------------------------------------------
// test/cases/bad-inputs.json: calls that must throw.

/** The data of a bad call: randomTensor(random, seed) with elements replaced, a Float64Array, or a plain array. */
export type BadData = { random: number; seed: number; set?: Record<string, CaseValue> } | { float64: number } | { array: number[] };

export interface BadCall {
  name: string;
  error: keyof typeof ERROR_CLASSES;
  code: ErrorCode;
  /** A regular expression the message must match. */
  message: string;
  location?: ErrorLocation;
}

const ERROR_CLASSES = { EdgeMoqError, InvalidInputError, BackendError, ConfigError, FormatError } as const;

/** A bad call's data, made afresh. */
export function badData(data: BadData): unknown {
  if ('float64' in data) return new Float64Array(data.float64);
  if ('array' in data) return [...data.array];
  const values = randomTensor(data.random, data.seed);
  for (const [index, value] of Object.entries(data.set ?? {})) values[Number(index)] = caseValue(value);
  return values;
}

/** What a bad call must have thrown: its class, its code and its words. */
export function expectError(error: unknown, call: BadCall): void {
  expect(error).toBeInstanceOf(ERROR_CLASSES[call.error]);
  expect((error as EdgeMoqError).code).toBe(call.code);
  expect((error as Error).message).toMatch(new RegExp(call.message));
}
