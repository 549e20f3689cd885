// `edge-moq/tfjs` for Cloudflare Workers: the Worker's WebAssembly sources (workerd.ts) and the
// TensorFlow.js integration, so a Worker can load packed models and serve predictions.

import './workerd.js';

export * from '../tfjs/index.js';
