// One command submission and its read-back, shared by the fake-quantization and packing
// kernels: the commands are encoded inside error scopes, the read-back is mapped, and a WebGPU
// error or a lost device becomes a GpuFailure for the caller to fall back on.

import { MAP_MODE_READ } from './flags.js';

/** A device loss (`lost`) or a failed submission. */
export class GpuFailure extends Error {
  constructor(
    message: string,
    readonly lost: boolean,
  ) {
    super(message);
  }
}

/** Runs `encode` (it writes the buffers, encodes and submits) inside the same error scopes, reading nothing back. */
export async function submitOnly(device: GPUDevice, encode: () => void, lost: () => boolean): Promise<void> {
  const scopes = withErrorScopes(device, encode);
  const { encodeError, errors } = await scopes;
  if (encodeError !== null) throw new GpuFailure(`encoding failed: ${(encodeError as Error)?.message ?? String(encodeError)}`, lost());
  if (errors.length > 0) throw new GpuFailure(`a submission failed: ${errors.map((e) => e.message).join('; ')}`, lost());
}

/** Calls `encode` inside validation, out-of-memory and internal error scopes and collects what they caught. */
async function withErrorScopes(device: GPUDevice, encode: () => void): Promise<{ encodeError: unknown; errors: (GPUError | Error)[] }> {
  device.pushErrorScope('internal');
  device.pushErrorScope('out-of-memory');
  device.pushErrorScope('validation');
  let encodeError: unknown = null;
  try {
    encode();
  } catch (error) {
    encodeError = error;
  }
  const caught: (GPUError | Error | null)[] = await Promise.all([device.popErrorScope(), device.popErrorScope(), device.popErrorScope()]).catch((error: unknown) => [
    error instanceof Error ? error : new Error(String(error)),
  ]);
  return { encodeError, errors: caught.filter((e): e is GPUError | Error => e !== null) };
}

/**
 * Runs `encode` (it writes the buffers, encodes, submits and returns the read-back buffer)
 * inside validation, out-of-memory and internal error scopes, then maps `bytes` of the
 * read-back and returns what `read` makes of them. `lost()` says whether the device is gone.
 */
export async function submitAndRead<T>(device: GPUDevice, bytes: number, encode: () => GPUBuffer, read: (mapped: ArrayBuffer) => T, lost: () => boolean): Promise<T> {
  device.pushErrorScope('internal');
  device.pushErrorScope('out-of-memory');
  device.pushErrorScope('validation');
  let readback: GPUBuffer | undefined;
  let encodeError: unknown = null;
  try {
    readback = encode();
  } catch (error) {
    encodeError = error;
  }
  const scopes: Promise<(GPUError | Error | null)[]> = Promise.all([device.popErrorScope(), device.popErrorScope(), device.popErrorScope()]).catch((error: unknown) => [
    error instanceof Error ? error : new Error(String(error)),
  ]);
  if (encodeError !== null || readback === undefined) {
    await scopes;
    throw new GpuFailure(`encoding failed: ${(encodeError as Error)?.message ?? String(encodeError)}`, lost());
  }
  try {
    await readback.mapAsync(MAP_MODE_READ, 0, bytes);
  } catch (error) {
    await scopes;
    throw new GpuFailure(`the read-back failed: ${(error as Error).message}`, true);
  }
  try {
    const errors = (await scopes).filter((e): e is GPUError | Error => e !== null);
    if (errors.length > 0) throw new GpuFailure(`a submission failed: ${errors.map((e) => e.message).join('; ')}`, false);
    return read(readback.getMappedRange(0, bytes));
  } finally {
    if (readback.mapState === 'mapped') readback.unmap();
  }
}
