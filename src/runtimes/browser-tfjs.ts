// `edge-moq/tfjs` for browsers: the fetched WebAssembly sources (browser.ts) and the
// TensorFlow.js integration. The shared code is one chunk with the main entry.

import './browser.js';

export * from '../tfjs/index.js';
