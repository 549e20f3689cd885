// The entry for browsers (export condition `browser`). The builds are fetched from next to the
// package on first use rather than inlined: each is fetched only if that backend is created,
// and the `new URL('literal', import.meta.url)` form is what Vite, webpack 5 and Parcel follow
// to emit the file alongside the application's bundle.

import { useWasmSources } from '../backends/wasm/loader.js';

useWasmSources({
  simd: new URL('../../build/edge-moq-simd.wasm', import.meta.url),
  scalar: new URL('../../build/edge-moq-scalar.wasm', import.meta.url),
});

export * from '../index.js';
