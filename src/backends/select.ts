// Runtime selection: what can run here, what was picked, and why the others were not.

import { BackendError, InvalidInputError } from '../errors.js';
import type { Backend, BackendKind, BackendRequest, SelectionReport } from './backend.js';
import { WasmBackend } from './wasm.js';
import { runtimeHasSimd, type WasmSource } from './wasm-loader.js';

export interface CreateBackendOptions {
  /** 'auto' (default) picks the best backend this runtime offers. */
  kind?: BackendRequest;
  /** Where to load the WebAssembly builds from (default: next to the package's JS). */
  wasm?: { simd?: WasmSource; scalar?: WasmSource };
}

const KINDS: readonly BackendRequest[] = ['auto', 'wasm-simd', 'wasm', 'webgpu'];

type Candidate = SelectionReport['candidates'][number];

function wasmCandidates(): Candidate[] {
  const simd = runtimeHasSimd();
  return [
    {
      kind: 'webgpu', available: false, picked: false,
      reason: 'not built into this version of edge-moq',
    },
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

export async function createBackend(options: CreateBackendOptions = {}): Promise<Backend> {
  const requested = options.kind ?? 'auto';
  if (!KINDS.includes(requested)) {
    throw new InvalidInputError('INVALID_ARGUMENT', `kind must be one of ${KINDS.join(', ')}, got ${JSON.stringify(requested)}.`);
  }
  const candidates = wasmCandidates();
  let picked: BackendKind;
  if (requested === 'auto') {
    picked = candidates.find((c) => c.available)!.kind;
    for (const c of candidates) {
      if (c.kind === picked) c.reason += ' (preferred among those available)';
      else if (c.available) c.reason += `; ${picked} ranks higher`;
    }
  } else {
    const wanted = candidates.find((c) => c.kind === requested)!;
    if (!wanted.available) {
      throw new BackendError('BACKEND_UNAVAILABLE',
        `backend "${requested}" is not available here: ${wanted.reason}. Use kind: 'auto' to take the best available one.`);
    }
    picked = requested;
    for (const c of candidates) if (c.kind !== picked) c.reason += '; not requested';
  }
  for (const c of candidates) c.picked = c.kind === picked;
  const backend = await WasmBackend.create(picked === 'wasm-simd' ? 'simd' : 'scalar',
    picked === 'wasm-simd' ? options.wasm?.simd : options.wasm?.scalar);
  backend.selection = { requested, picked, candidates };
  return backend;
}
