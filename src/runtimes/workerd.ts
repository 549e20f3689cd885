// The entry for Cloudflare Workers (export conditions `workerd`, `worker`). Workers refuse to
// compile WebAssembly from bytes at run time, so the builds are imported as modules: wrangler
// (and miniflare's CompiledWasm rule) compile them when the Worker is deployed.

import { useWasmSources } from '../backends/wasm/loader.js';
import simd from '../../build/edge-moq-simd.wasm';
import scalar from '../../build/edge-moq-scalar.wasm';

useWasmSources({ simd, scalar });

export * from '../index.js';
