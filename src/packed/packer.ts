// Packing on a backend: float32 data to `edge-moq.packed/1` codes and back. Every backend
// packs exactly what it fake-quantizes: unpack(pack(x)) equals fakeQuantize(x) value for value
// (binary packs an exact 0 as +1, and a zero keeps no sign: -0 comes back as +0).

import type { BackendKind } from '../backends/backend.js';
import type { PackedTensor, PackOptions } from './layout.js';

export interface Packer {
  /** The backend that packs (after a WebGPU device loss, the WebAssembly one that took over). */
  readonly kind: BackendKind;
  /**
   * Packs `data` (left untouched). With `into` (arrays of the right sizes, e.g. from
   * allocatePacked) nothing is allocated; on error `into` is untouched too.
   */
  pack(data: Float32Array, options: PackOptions, into?: PackedTensor): Promise<PackedTensor>;
  /** Dequantizes into `out` (length `packed.length`), or a new array. */
  unpack(packed: PackedTensor, out?: Float32Array): Promise<Float32Array>;
  dispose(): void;
}
