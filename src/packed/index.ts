// `edge-moq/packed`: integer codes you can store and ship (`edge-moq.packed/1`), packed and
// unpacked on any backend. A separate entry point, so code that only fake-quantizes (a
// training loop, a Worker) does not carry it.

import type { Backend, BackendRequest } from '../backends/backend.js';
import { createBackend, type CreateBackendOptions } from '../backends/select.js';
import type { WasmBackend } from '../backends/wasm/backend.js';
import type { WebGpuBackend } from '../backends/webgpu/backend.js';
import { InvalidInputError } from '../errors.js';
import type { Packer } from './packer.js';
import { WasmPacker } from '../backends/wasm/packer.js';
import { WebGpuPacker } from '../backends/webgpu/packer.js';

export {
  PACKED_FORMAT,
  PACKED_FORMAT_V2,
  allocatePacked,
  codeBytes,
  packedType,
  planPack,
  validatePacked,
  type PackedTensor,
  type PackedType,
  type PackOptions,
  type PackPlan,
} from './layout.js';
export type { Packer } from './packer.js';
export { addErrors, errorSummary, errorTotals, type ErrorTotals } from './errors.js';
// The errors this entry throws, so code that imports only it can tell them apart.
export { BackendError, EdgeMoqError, FormatError, InvalidInputError, type ErrorCode, type ErrorLocation } from '../errors.js';
export type { Grid } from '../kernel-plan.js';
export { WasmPacker } from '../backends/wasm/packer.js';
export { WebGpuPacker, type GpuPackedTensor } from '../backends/webgpu/packer.js';

/**
 * A packer on `backend`: on its `packingBackend`. 'auto' and an AutoBackend pack host arrays on
 * WebAssembly: the codes come back to the host anyway, and WebAssembly needs no upload. A
 * WebGpuBackend gives a WebGpuPacker, which also packs GPUBuffers where they are, on the
 * backend's device, buffers and failure state.
 *
 * @param backend - A backend from createBackend(), or a kind to create one with (the packer
 *   then owns it and disposes it with itself).
 * @param options - createBackend's options, when `backend` is a kind.
 * @returns A Packer; dispose it when done (a backend you passed stays yours).
 * @throws InvalidInputError when `backend` is neither a kind nor a backend from createBackend().
 */
export async function createPacker(backend: Backend | BackendRequest = 'auto', options: Omit<CreateBackendOptions, 'kind'> = {}): Promise<Packer> {
  if (typeof backend === 'string') {
    const created = await createBackend({ ...options, kind: backend });
    const packer = await createPacker(created);
    const dispose = packer.dispose.bind(packer);
    packer.dispose = () => {
      dispose();
      created.dispose();
    };
    return packer;
  }
  const on = (backend as { packingBackend?: WasmBackend | WebGpuBackend } | null)?.packingBackend;
  if (on?.kind === 'webgpu') return WebGpuPacker.create(on as WebGpuBackend);
  if (on) return new WasmPacker(on as WasmBackend);
  throw new InvalidInputError('INVALID_ARGUMENT', `createPacker needs a backend from createBackend() (or a kind: 'auto', 'wasm-simd', 'wasm', 'webgpu'), got ${backend?.kind ?? typeof backend}.`);
}

// safetensors, streamed: runtime-neutral over ByteSource/ByteSink (files in Node: edge-moq/node).
export {
  createSafetensorsWriter,
  decodeFloat32,
  encodeFloat32,
  encodeSafetensors,
  layoutSafetensors,
  memorySource,
  openSafetensors,
  readByteChunks,
  readBytes,
  readFloat32Chunks,
  type ByteChunkOptions,
  type ByteSink,
  type ByteSource,
  type Dtype,
  type Float32ChunkOptions,
  type FloatDtype,
  type SafetensorsFile,
  type SafetensorsLayout,
  type SafetensorsWriter,
  type SafetensorsWriterOptions,
  type TensorBytes,
  type TensorInfo,
  type TensorSpec,
} from '../formats/safetensors.js';
export { quantizeSafetensors, type QuantizeFileOptions, type QuantizeProgress, type QuantizeReport, type TensorReport } from '../formats/quantize-file.js';
export { dequantizeSafetensors, type DequantizeFileOptions, type DequantizeReport } from '../formats/dequantize-file.js';
export { compileRecipe, readRecipe, recipeFromDeepSpeed, type CompiledRecipe, type CompiledRule, type Recipe, type RecipeRule, type RecipeSettings } from '../formats/recipe.js';
export { isPackedFile, readPackedLayout, type PackedEntry, type PackedParts } from '../formats/packed-metadata.js';
export { readableSource, writableSink } from '../formats/streams.js';
