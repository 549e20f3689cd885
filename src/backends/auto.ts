// What createBackend('auto') gives when a GPU is worth using: each host call goes to WebGPU or
// WebAssembly by its size, caller-owned GPUBuffers always to WebGPU.

import type { FakeQuantizeOptions } from '../kernel-plan.js';
import type { Backend, BackendKind, FakeQuantizeTarget, GroupStats, QuantizeJob, SelectionReport } from './backend.js';
import { explainSelection, selectionOf } from './backend.js';
import type { WasmBackend } from './wasm/backend.js';
import type { DowngradeEvent, GpuBufferJob, WebGpuBackend } from './webgpu/backend.js';

/**
 * Routes each call by size between a WebGpuBackend and its WebAssembly fallback (`gpu.wasm`).
 * It owns the WebGpuBackend, which owns the fallback: dispose() frees both, once.
 */
export class AutoBackend implements Backend {
  /** The WebAssembly backend small host calls (and everything, after a device loss) run on. */
  readonly wasm: WasmBackend;
  private last: BackendKind | null = null;

  /**
   * @param gpu - The WebGPU backend large calls go to; the AutoBackend takes it over (disposes it).
   * @param crossoverElements - Host calls with fewer elements (all jobs of a call together) run on `gpu.wasm`.
   */
  constructor(
    readonly gpu: WebGpuBackend,
    readonly crossoverElements: number,
  ) {
    this.wasm = gpu.wasm;
  }

  /**
   * The kind that ran the most recent call: 'webgpu', or a WebAssembly kind for a call under
   * the crossover, for groupStats and after a device loss. Before the first call, the kind
   * large calls go to (`activeKind`).
   */
  get kind(): BackendKind {
    return this.last ?? this.gpu.activeKind;
  }

  get selection(): SelectionReport {
    return selectionOf(this);
  }

  /** What createPacker packs on: WebAssembly, since the codes come back to the host anyway and it needs no upload. */
  get packingBackend(): WasmBackend {
    return this.wasm;
  }

  /** What runs large host calls now: 'webgpu', or WebAssembly after a device loss. */
  get activeKind(): BackendKind {
    return this.gpu.activeKind;
  }

  /** The backend that ran the most recent call, or null before the first. */
  get lastKind(): BackendKind | null {
    return this.last;
  }

  /**
   * @param listener - Called once, when the WebGPU backend moves to WebAssembly.
   * @returns A function that stops listening.
   */
  onDowngrade(listener: (event: DowngradeEvent) => void): () => void {
    return this.gpu.onDowngrade(listener);
  }

  /** As Backend.fakeQuantize, on WebGPU from `crossoverElements` elements, else on WebAssembly. */
  fakeQuantize(data: Float32Array, options: FakeQuantizeOptions, target?: FakeQuantizeTarget): Promise<Float32Array> {
    return this.route(data?.length ?? 0, (backend) => backend.fakeQuantize(data, options, target));
  }

  /** As Backend.fakeQuantizeMany, routed by the elements of all jobs together. */
  fakeQuantizeMany(jobs: readonly QuantizeJob[]): Promise<void> {
    const elements = Array.isArray(jobs) ? jobs.reduce((sum, job) => sum + (job?.data?.length ?? 0), 0) : 0;
    return this.route(elements, (backend) => backend.fakeQuantizeMany(jobs));
  }

  /** WebGpuBackend.fakeQuantizeBuffer: always on the GPU. */
  fakeQuantizeBuffer(buffer: GPUBuffer, length: number, options: FakeQuantizeOptions): Promise<GPUBuffer> {
    return this.route(Infinity, () => this.gpu.fakeQuantizeBuffer(buffer, length, options));
  }

  /** WebGpuBackend.fakeQuantizeBuffers: always on the GPU. */
  fakeQuantizeBuffers(jobs: readonly GpuBufferJob[]): Promise<void> {
    return this.route(Infinity, () => this.gpu.fakeQuantizeBuffers(jobs));
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

  /** Disposes the WebGPU backend, and with it the WebAssembly one. */
  dispose(): void {
    this.gpu.dispose();
  }

  /** Runs `call` on the backend for `elements`; once it settles, `kind` says where it ran. */
  private async route<T>(elements: number, call: (backend: Backend) => Promise<T>): Promise<T> {
    const backend = elements >= this.crossoverElements ? this.gpu : this.wasm;
    try {
      return await call(backend);
    } finally {
      this.last = backend === this.gpu ? this.gpu.activeKind : this.wasm.kind;
    }
  }
}
