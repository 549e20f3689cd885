// `edge-moq/conformance` for Cloudflare Workers: this runtime's WebAssembly sources (workerd.ts)
// and the conformance runner, kept out of the main entry so production code does not carry it.

import './workerd.js';

export * from '../conformance.js';
