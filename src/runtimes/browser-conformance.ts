// `edge-moq/conformance` for browser: this runtime's WebAssembly sources (browser.ts)
// and the conformance runner, kept out of the main entry so production code does not carry it.

import './browser.js';

export * from '../conformance.js';
