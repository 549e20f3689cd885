// The --backend flag of the file commands, as a Packer.

import type { BackendRequest } from '../backends/backend.js';
import { nodeGpu } from '../backends/webgpu/node-gpu.js';
import { InvalidInputError } from '../errors.js';
import { createPacker } from '../packed/index.js';
import type { Packer } from '../packed/packer.js';
import type { ParsedArgs } from './args.js';

const KINDS = ['auto', 'webgpu', 'wasm-simd', 'wasm'];

/** The CLI's logger for backends: the library prints nothing itself, the CLI says on stderr what it did. */
export const logToStderr = (message: string): void => console.warn(message);

export async function openPacker(args: ParsedArgs): Promise<Packer> {
  const kind = args.flags.get('backend') ?? 'auto';
  if (typeof kind !== 'string' || !KINDS.includes(kind)) {
    throw new InvalidInputError('INVALID_ARGUMENT', `--backend must be one of ${KINDS.join(', ')}, got ${String(kind)}.`);
  }
  // 'auto' packs on WebAssembly (the codes come back to the host), so Dawn loads only for 'webgpu'.
  const gpu = kind === 'webgpu' ? (await nodeGpu())?.gpu : undefined;
  return createPacker(kind as BackendRequest, { log: logToStderr, ...(gpu ? { gpu } : {}) });
}
