// `edge-moq/packed` for Cloudflare Workers: the Worker's WebAssembly sources (workerd.ts) and
// the packing API. The shared code is one chunk with the main entry.

import './workerd.js';

export * from '../packed/index.js';
