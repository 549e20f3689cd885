// Runtime selection: what can run here, what was picked, and why the others were not.

import { describeValue } from '../describe.js';
import { BackendError, InvalidInputError } from '../errors.js';
import { AutoBackend } from './auto.js';
import type { Backend, BackendKind, BackendRequest, SelectionReport } from './backend.js';
import { recordSelection } from './backend.js';
import { WasmBackend } from './wasm/backend.js';
import { runtimeHasSimd, type WasmSource } from './wasm/loader.js';
import { WebGpuBackend, describeAdapter, findAdapter, summarizeAdapter } from './webgpu/backend.js';

/**
 * Under 'auto', host tensors below this many elements per call (all jobs of a fakeQuantizeMany
 * together) stay on WebAssembly even when a GPU adapter exists: the upload, the submission and
 * the read-back cost more than the kernel saves. bench/gpu.mjs (npm run bench:gpu) measures it: the median time
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

/** What createBackend takes: the kind, and where each backend's parts come from. */
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
  /**
   * Receives what the library would otherwise print: a WebGPU backend's move to WebAssembly
   * after a device loss. The default prints nothing (the CLI passes one writing to stderr).
   */
  log?: (message: string) => void;
}

const KINDS: readonly BackendRequest[] = ['auto', 'wasm-simd', 'wasm', 'webgpu'];

type Row = SelectionReport['candidates'][number];

/** What a candidate's probe found. */
interface Probe {
  available: boolean;
  reason: string;
  /** Why 'auto' passes over it although it is available, given the kind picked instead. */
  declined?: (picked: BackendKind) => string;
  gpu?: GPU;
  adapter?: GPUAdapter;
}

/** One createBackend call: its options and the rows of its report. */
interface Selection {
  requested: BackendRequest;
  options: CreateBackendOptions;
  crossover: number;
  row(kind: BackendKind): Row;
  probe(kind: BackendKind): Probe;
  /** The backend of the best available candidate ranked below `kind` (created once per call). */
  below(kind: BackendKind): Promise<Backend>;
}

/** What a candidate's create() made: the backend, notes for explain(), what it does when picked by 'auto', the candidate it runs calls on. */
interface Opened {
  backend: Backend;
  notes?: string[];
  role?: string;
  uses?: BackendKind;
}

interface Candidate {
  kind: BackendKind;
  /** Higher is preferred under 'auto'. */
  rank: number;
  /** Probed only when asked for, or under 'auto' (a GPU probe requests an adapter). */
  lazy?: boolean;
  /** Under 'auto', a failure to create it passes on to the next candidate. */
  fallible?: boolean;
  probe(options: CreateBackendOptions): Probe | Promise<Probe>;
  create(selection: Selection): Promise<Opened>;
}

const wasmCandidate = (kind: 'wasm-simd' | 'wasm', rank: number, probe: () => Probe): Candidate => ({
  kind,
  rank,
  probe,
  create: async ({ options }) => {
    const build = kind === 'wasm-simd' ? 'simd' : 'scalar';
    const staging = options.stagingBytes === undefined ? {} : { stagingBytes: options.stagingBytes };
    return { backend: await WasmBackend.create(build, options.wasm?.[build], staging) };
  },
});

/** Every backend createBackend can give, best first. */
const CANDIDATES: readonly Candidate[] = [
  {
    kind: 'webgpu',
    rank: 3,
    lazy: true,
    fallible: true,
    probe: probeWebGpu,
    async create(selection) {
      const { options, requested, crossover } = selection;
      const wasm = (await selection.below('webgpu')) as WasmBackend;
      const { gpu, adapter } = selection.probe('webgpu');
      const backend = await WebGpuBackend.create({
        ...(gpu ? { gpu } : {}),
        ...(adapter ? { adapter } : {}),
        ...(options.device ? { device: options.device } : {}),
        ...(options.log ? { log: options.log } : {}),
        wasmBackend: wasm,
      });
      if (requested !== 'auto') return { backend, notes: [`if the device is lost, host work continues on ${wasm.kind}`] };
      selection.row(wasm.kind).reason += `; runs host calls under ${crossover} elements (there the upload and read-back cost more than WebGPU saves)`;
      return {
        backend: new AutoBackend(backend, crossover),
        role: `host calls of ${crossover} elements or more, and GPUBuffers`,
        uses: wasm.kind,
        notes: [`routing: per call by size, crossover ${crossover} elements (set by crossoverElements)`, `if the device is lost, everything continues on ${wasm.kind}`],
      };
    },
  },
  wasmCandidate('wasm-simd', 2, () => {
    const simd = runtimeHasSimd();
    return { available: simd, reason: simd ? 'WebAssembly.validate accepted the SIMD probe' : 'WebAssembly.validate rejected the SIMD probe: no WebAssembly SIMD here' };
  }),
  wasmCandidate('wasm', 1, () => ({ available: true, reason: 'scalar WebAssembly runs everywhere WebAssembly does' })),
];

/** Finds an adapter (or takes the given device) without creating a device. */
async function probeWebGpu(options: CreateBackendOptions): Promise<Probe> {
  if (options.device) return { available: true, reason: 'a GPUDevice was given' };
  const gpu = options.gpu ?? (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
  const adapter = options.adapter ?? (await findAdapter(gpu));
  if (typeof adapter === 'string') return { available: false, reason: adapter };
  const summary = summarizeAdapter(adapter);
  return {
    available: true,
    reason: `adapter ${describeAdapter(summary)}`,
    ...(summary.isFallbackAdapter ? { declined: (picked: BackendKind) => `: a fallback (software) adapter is slower than ${picked} for host data; request kind 'webgpu' to use it anyway` } : {}),
    ...(gpu ? { gpu } : {}),
    adapter,
  };
}

const OPTION_KEYS: readonly (keyof CreateBackendOptions)[] = ['kind', 'stagingBytes', 'wasm', 'gpu', 'adapter', 'device', 'crossoverElements', 'log'];

/**
 * The best backend this runtime offers, or the one asked for; `explain()` says why.
 *
 * @param request - Options, or just the kind: `createBackend('webgpu')` is short for
 *   `createBackend({ kind: 'webgpu' })`. 'auto' (the default) picks the best available.
 * @returns A backend whose `selection` records every candidate and why it was or was not picked.
 *   Dispose it when done.
 * @throws InvalidInputError for unknown options; BackendError (BACKEND_UNAVAILABLE) when the
 *   requested kind cannot run here.
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
  if (options.log !== undefined && typeof options.log !== 'function') {
    throw new InvalidInputError('INVALID_ARGUMENT', `log must be a function, got ${describeValue(options.log)}.`);
  }
  const probes = new Map<BackendKind, Probe>();
  for (const c of CANDIDATES) {
    probes.set(c.kind, c.lazy && requested !== 'auto' && requested !== c.kind ? { available: false, reason: 'not probed: not requested' } : await c.probe(options));
  }
  const rows: Row[] = CANDIDATES.map(({ kind }) => ({ kind, available: probes.get(kind)!.available, picked: false, reason: probes.get(kind)!.reason }));
  const row = (kind: BackendKind) => rows.find((r) => r.kind === kind)!;
  const opened = new Map<BackendKind, Promise<Opened>>();
  const open = (c: Candidate) => {
    if (!opened.has(c.kind)) opened.set(c.kind, c.create(selection));
    return opened.get(c.kind)!;
  };
  const selection: Selection = {
    requested,
    options,
    crossover,
    row,
    probe: (kind) => probes.get(kind)!,
    below: async (kind) => {
      const rank = CANDIDATES.find((c) => c.kind === kind)!.rank;
      return (await open(CANDIDATES.find((c) => c.rank < rank && row(c.kind).available)!)).backend;
    },
  };
  const report = (picked: BackendKind, { backend, notes = [] }: Opened): Backend => {
    for (const r of rows) r.picked = r.kind === picked;
    return recordSelection(backend, { requested, picked, candidates: rows, ...(notes.length > 0 ? { notes } : {}) });
  };

  if (requested !== 'auto') {
    const wanted = row(requested);
    if (!wanted.available) {
      throw new BackendError('BACKEND_UNAVAILABLE', `backend "${requested}" is not available here: ${wanted.reason}. Use kind: 'auto' to take the best available one.`);
    }
    for (const r of rows) if (r !== wanted && r.available) r.reason += '; not requested';
    return report(requested, await open(CANDIDATES.find((c) => c.kind === requested)!));
  }

  const declined: Candidate[] = [];
  for (const c of CANDIDATES) {
    const r = row(c.kind);
    if (!r.available) continue;
    if (probes.get(c.kind)!.declined) {
      declined.push(c);
      continue;
    }
    let result: Opened;
    try {
      result = await open(c);
    } catch (error) {
      if (!c.fallible) throw error;
      r.available = false;
      r.reason += `, but it could not be used: ${(error as Error).message}`;
      continue;
    }
    for (const d of declined) row(d.kind).reason += probes.get(d.kind)!.declined!(c.kind);
    r.reason += ` (preferred among those available)${result.role ? `; ${result.role}` : ''}`;
    for (const other of CANDIDATES) {
      if (other.rank < c.rank && row(other.kind).available && other.kind !== result.uses) row(other.kind).reason += `; ${c.kind} ranks higher`;
    }
    return report(c.kind, result);
  }
  throw new BackendError('BACKEND_UNAVAILABLE', 'no WebAssembly here.');
}

function readCreateOptions(request: unknown): CreateBackendOptions {
  if (typeof request === 'string') return { kind: request as BackendRequest };
  if (typeof request !== 'object' || request === null || Array.isArray(request)) {
    throw new InvalidInputError('INVALID_ARGUMENT', `createBackend takes options such as { kind: 'webgpu' } (or just the kind, 'webgpu'), got ${describeValue(request)}.`);
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
