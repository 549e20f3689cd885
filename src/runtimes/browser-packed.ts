// `edge-moq/packed` for browsers: the fetched WebAssembly sources (browser.ts) and the packing
// API. The shared code is one chunk with the main entry.

import './browser.js';

export * from '../packed/index.js';
