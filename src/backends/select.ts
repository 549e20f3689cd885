// Runtime selection: what can run here, what was picked, and why the others were not.

import type { FakeQuantizeOptions } from '../kernel-plan.js';
import { describeValue } from '../describe.js';
import { BackendError, InvalidInputError } from '../errors.js';
import type { Backend, BackendKind, BackendRequest, GroupStats, QuantizeJob, SelectionReport } from './backend.js';
import { explainSelection } from './backend.js';
import { WasmBackend } from './wasm/backend.js';
import { runtimeHasSimd, type WasmSource } from './wasm/loader.js';
import { WebGpuBackend, describeAdapter, summarizeAdapter, type DowngradeEvent, type GpuBufferJob } from './webgpu/backend.js';

/**
 * Under 'auto', host tensors below this many elements per call (all jobs of a fakeQuantizeMany
 * together) stay on WebAssembly even when a GPU adapter exists: the upload, the submission and
 * the read-back cost more than the kernel saves. bench/crossover.mjs measures it: the median time
 * of fakeQuantize on a host Float32Array (symmetric 8-bit, groups of up to 4096), warm, on
 * wasm-simd and on WebGPU for 2^10..2^24 elements; the crossover is the smallest size from which
 * WebGPU stays faster. On this project's machines (2 vCPU, Dawn on SwiftShader) WebGPU never
 * wins (2^24: 39 ms against 6.0 s), which is why fallback adapters are not picked for host data
 * at all. No hardware GPU was available to measure on: 2^20 is where wasm-simd's time (1.4 ms
 * here) is what a 16 GB/s link plus one submission's latency needs to move 4 MiB each way, so
 * below it WebAssembly wins on any GPU. Pass `crossoverElements` with a figure measured on your
 * hardware.
 */
export const WEBGPU_CROSSOVER_ELEMENTS = 1 << 20;

export interface CreateBackendOptions {
  /** 'auto' (default) picks the best backend this runtime offers. */
  kind?: BackendRequest;
  /**
   * The most host data the WebAssembly backend stages at once (default 64 MiB): larger arrays
   * go in chunks of whole groups. Lower it to keep memory small (a Worker has 128 MB).
   */
  stagingBytes?: number;
  /** Where to load the WebAssembly builds from (default: next to the package's JS). */
  wasm?: { simd?: WasmSource; scalar?: WasmSource };
  /**
   * WebGPU entry point (default navigator.gpu). In Node there is none: pass `nodeGpu()`'s
   * (src/backends/webgpu/node-gpu.ts), or `create([])` from the `webgpu` package.
   */
  gpu?: GPU;
  adapter?: GPUAdapter;
  /** Quantize on this device: required for GPUBuffers you own. */
  device?: GPUDevice;
  /** 'auto' with a GPU: host calls with fewer elements than this run on WebAssembly. */
  crossoverElements?: number;
}

const KINDS: readonly BackendRequest[] = ['auto', 'wasm-simd', 'wasm', 'webgpu'];

type Candidate = SelectionReport['candidates'][number];

interface GpuProbe {
  candidate: Candidate;
  /** Whether it is a software (fallback) adapter. */
  fallback: boolean;
  gpu?: GPU;
  adapter?: GPUAdapter;
}

/** Finds an adapter (or takes the given device) without creating a device. */
async function probeWebGpu(options: CreateBackendOptions): Promise<GpuProbe> {
  const candidate: Candidate = { kind: 'webgpu', available: false, picked: false, reason: '' };
  if (options.device) {
    candidate.available = true;
    candidate.reason = 'a GPUDevice was given';
    return { candidate, fallback: summarizeAdapter(options.device).isFallbackAdapter };
  }
  const gpu = options.gpu ?? (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
  if (!gpu && !options.adapter) {
    candidate.reason = typeof process === 'object' && process.versions?.node
      ? 'no navigator.gpu in Node: pass { gpu: (await nodeGpu()).gpu }, or create([]) from the "webgpu" package'
      : 'no navigator.gpu: this runtime has no WebGPU';
    return { candidate, fallback: false };
  }
  let adapter = options.adapter;
  try {
    adapter ??= (await gpu!.requestAdapter({ powerPreference: 'high-performance' })) ?? undefined;
  } catch (error) {
    candidate.reason = `requestAdapter failed: ${(error as Error).message}`;
    return { candidate, fallback: false };
  }
  if (!adapter) {
    candidate.reason = 'navigator.gpu found no adapter';
    return { candidate, fallback: false };
  }
  const summary = summarizeAdapter(adapter);
  candidate.available = true;
  candidate.reason = `adapter ${describeAdapter(summary)}`;
  return { candidate, fallback: summary.isFallbackAdapter, ...(gpu ? { gpu } : {}), adapter };
}

function wasmCandidates(): Candidate[] {
  const simd = runtimeHasSimd();
  return [
    {
      kind: 'wasm-simd', available: simd, picked: false,
      reason: simd ? 'WebAssembly.validate accepted the SIMD probe' : 'WebAssembly.validate rejected the SIMD probe: no WebAssembly SIMD here',
    },
    {
      kind: 'wasm', available: true, picked: false,
      reason: 'scalar WebAssembly runs everywhere WebAssembly does',
    },
  ];
}

const OPTION_KEYS: readonly (keyof CreateBackendOptions)[] = ['kind', 'stagingBytes', 'wasm', 'gpu', 'adapter', 'device', 'crossoverElements'];

/**
 * The best backend this runtime offers, or the one asked for. `createBackend('webgpu')` is short
 * for `createBackend({ kind: 'webgpu' })`.
 */
export async function createBackend(request: CreateBackendOptions | BackendRequest = {}): Promise<Backend> {
  const options = readCreateOptions(request);
  const requested = options.kind ?? 'auto';
  if (!KINDS.includes(requested)) {
    throw new InvalidInputError('INVALID_ARGUMENT', `kind must be one of ${KINDS.join(', ')}, got ${describeValue(requested)}.`);
  }
  const crossover = options.crossoverElements ?? WEBGPU_CROSSOVER_ELEMENTS;
  if (!Number.isSafeInteger(crossover) || crossover < 0) {
    throw new InvalidInputError('INVALID_ARGUMENT', `crossoverElements must be a non-negative integer, got ${describeValue(options.crossoverElements)}.`);
  }
  const wasmSide = wasmCandidates();
  const wasmPick = wasmSide.find((c) => c.available)!;
  const wasmOptions = options.stagingBytes === undefined ? {} : { stagingBytes: options.stagingBytes };
  const loadWasm = () => WasmBackend.create(wasmPick.kind === 'wasm-simd' ? 'simd' : 'scalar',
    wasmPick.kind === 'wasm-simd' ? options.wasm?.simd : options.wasm?.scalar, wasmOptions);
  const probeNeeded = requested === 'auto' || requested === 'webgpu';
  const probe = probeNeeded ? await probeWebGpu(options) : null;
  const gpuCandidate: Candidate = probe?.candidate ?? { kind: 'webgpu', available: false, picked: false, reason: 'not probed' };
  const candidates = [gpuCandidate, ...wasmSide];
  const report = (picked: BackendKind, notes: string[] = []): SelectionReport => {
    for (const c of candidates) c.picked = c.kind === picked;
    return { requested, picked, candidates, ...(notes.length > 0 ? { notes } : {}) };
  };
  const openGpu = (wasmBackend: WasmBackend) => WebGpuBackend.create({
    ...(probe?.gpu ? { gpu: probe.gpu } : {}),
    ...(probe?.adapter ? { adapter: probe.adapter } : {}),
    ...(options.device ? { device: options.device } : {}),
    wasmBackend,
  });

  if (requested !== 'auto') {
    const wanted = candidates.find((c) => c.kind === requested)!;
    if (requested !== 'webgpu') gpuCandidate.reason = 'not probed: not requested';
    if (!wanted.available) {
      throw new BackendError('BACKEND_UNAVAILABLE',
        `backend "${requested}" is not available here: ${wanted.reason}. Use kind: 'auto' to take the best available one.`);
    }
    for (const c of candidates) if (c.kind !== requested && c.available) c.reason += '; not requested';
    if (requested === 'webgpu') {
      const backend = await openGpu(await loadWasm());
      backend.selection = report('webgpu', [`if the device is lost, host work continues on ${wasmPick.kind}`]);
      return backend;
    }
    const backend = await WasmBackend.create(requested === 'wasm-simd' ? 'simd' : 'scalar',
      requested === 'wasm-simd' ? options.wasm?.simd : options.wasm?.scalar, wasmOptions);
    backend.selection = report(requested);
    return backend;
  }

  const wasm = await loadWasm();
  for (const c of wasmSide) if (c.available && c !== wasmPick) c.reason += `; ${wasmPick.kind} ranks higher`;
  if (gpuCandidate.available && probe!.fallback && !options.device) {
    gpuCandidate.reason += `: a fallback (software) adapter is slower than ${wasmPick.kind} for host data; request kind 'webgpu' to use it anyway`;
  } else if (gpuCandidate.available) {
    try {
      const gpu = await openGpu(wasm);
      wasmPick.reason += `; runs host calls under ${crossover} elements, where WebGPU's upload and read-back cost more than they save`;
      gpuCandidate.reason += ` (preferred among those available); host calls of ${crossover} elements or more, and GPUBuffers`;
      const auto = new AutoBackend(gpu, wasm, crossover);
      auto.selection = report('webgpu', [
        `routing: per call by size, crossover ${crossover} elements (bench/crossover.mjs; override with crossoverElements)`,
        `if the device is lost, everything continues on ${wasmPick.kind}`,
      ]);
      return auto;
    } catch (error) {
      gpuCandidate.available = false;
      gpuCandidate.reason += `, but it could not be used: ${(error as Error).message}`;
    }
  }
  wasmPick.reason += ' (preferred among those available)';
  wasm.selection = report(wasmPick.kind);
  return wasm;
}

function readCreateOptions(request: unknown): CreateBackendOptions {
  if (typeof request === 'string') return { kind: request as BackendRequest };
  if (typeof request !== 'object' || request === null || Array.isArray(request)) {
    throw new InvalidInputError('INVALID_ARGUMENT',
      `createBackend takes options such as { kind: 'webgpu' } (or just the kind, 'webgpu'), got ${describeValue(request)}.`);
  }
  for (const key of Object.keys(request)) {
    if (!(OPTION_KEYS as readonly string[]).includes(key)) {
      throw new InvalidInputError('INVALID_ARGUMENT', `unknown createBackend option "${key}"; known options: ${OPTION_KEYS.join(', ')}.`);
    }
  }
  const { wasm } = request as CreateBackendOptions;
  if (wasm !== undefined) {
    if (typeof wasm !== 'object' || wasm === null || Object.keys(wasm).some((k) => k !== 'simd' && k !== 'scalar')) {
      throw new InvalidInputError('INVALID_ARGUMENT', `wasm must be { simd?, scalar? } (where each build comes from), got ${describeValue(wasm)}.`);
    }
  }
  return request as CreateBackendOptions;
}

/**
 * 'auto' with a usable GPU: each host call goes to WebGPU or WebAssembly by its size;
 * caller-owned GPUBuffers always go to WebGPU.
 */
export class AutoBackend implements Backend {
  readonly kind: BackendKind = 'webgpu';
  selection: SelectionReport;
  private last: BackendKind | null = null;

  constructor(readonly gpu: WebGpuBackend, readonly wasm: WasmBackend, readonly crossoverElements: number) {
    this.selection = gpu.selection;
  }

  /** What runs large host calls now: 'webgpu', or WebAssembly after a device loss. */
  get activeKind(): BackendKind {
    return this.gpu.activeKind;
  }

  /** The backend that ran the most recent call, or null before the first. */
  get lastKind(): BackendKind | null {
    return this.last;
  }

  onDowngrade(listener: (event: DowngradeEvent) => void): () => void {
    return this.gpu.onDowngrade(listener);
  }

  async fakeQuantize(data: Float32Array, options: FakeQuantizeOptions): Promise<Float32Array> {
    await this.fakeQuantizeMany([{ data, options }]);
    return data;
  }

  fakeQuantizeMany(jobs: readonly QuantizeJob[]): Promise<void> {
    const elements = Array.isArray(jobs) ? jobs.reduce((sum, job) => sum + (job?.data?.length ?? 0), 0) : 0;
    return this.route(elements).fakeQuantizeMany(jobs);
  }

  fakeQuantizeBuffer(buffer: GPUBuffer, length: number, options: FakeQuantizeOptions): Promise<GPUBuffer> {
    this.last = this.gpu.activeKind;
    return this.gpu.fakeQuantizeBuffer(buffer, length, options);
  }

  fakeQuantizeBuffers(jobs: readonly GpuBufferJob[]): Promise<void> {
    this.last = this.gpu.activeKind;
    return this.gpu.fakeQuantizeBuffers(jobs);
  }

  /** On WebAssembly at any size: see WebGpuBackend.groupStats. */
  groupStats(data: Float32Array, options: { groups?: number; groupSize?: number }): Promise<GroupStats> {
    this.last = this.wasm.kind;
    return this.wasm.groupStats(data, options);
  }

  explain(): string {
    const lines = [explainSelection(this.selection)];
    if (this.gpu.downgradedBecause !== null) lines.push(`  now running everything on ${this.wasm.kind}: ${this.gpu.downgradedBecause}`);
    return lines.join('\n');
  }

  dispose(): void {
    this.gpu.dispose();
    this.wasm.dispose();
  }

  private route(elements: number): Backend {
    const backend = elements >= this.crossoverElements ? this.gpu : this.wasm;
    this.last = backend === this.gpu ? this.gpu.activeKind : this.wasm.kind;
    return backend;
  }
}
