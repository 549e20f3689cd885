// `edge-moq info`: the backends this runtime offers, the GPU adapter if there is one, and what
// 'auto' picks.

import { nodeGpu } from '../backends/webgpu/node-gpu.js';
import { createBackend } from '../backends/select.js';
import { logToStderr } from './packer.js';
import { runtimeHasSimd } from '../backends/wasm/loader.js';
import { summarizeAdapter } from '../backends/webgpu/backend.js';
import { escapeForTerminal } from './terminal.js';

export async function infoCommand(): Promise<number> {
  console.log(`edge-moq on ${typeof process === 'object' ? `Node ${process.versions.node}` : 'this runtime'}`);
  console.log(`WebAssembly SIMD: ${runtimeHasSimd() ? 'yes' : 'no'}`);
  const found = await nodeGpu();
  const adapter = await found?.gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!found) {
    console.log('WebGPU: not available (no navigator.gpu, and the "webgpu" package is not installed)');
  } else if (!adapter) {
    console.log(`WebGPU: ${found.note}; no adapter`);
  } else {
    // The adapter's strings come from the driver.
    const summary = summarizeAdapter(adapter);
    console.log(`WebGPU: ${found.note}`);
    console.log(`  adapter: ${escapeForTerminal(summary.description || summary.device || 'unnamed')}`);
    console.log(`  vendor: ${escapeForTerminal(summary.vendor || 'unknown')}, architecture: ${escapeForTerminal(summary.architecture || 'unknown')}`);
    console.log(`  fallback (software) adapter: ${summary.isFallbackAdapter ? 'yes' : 'no'}`);
    console.log(`  features: ${escapeForTerminal(summary.features.join(', ') || 'none')}`);
    console.log(`  subgroups: ${adapter.features.has('subgroups') ? 'yes (reductions use subgroup operations)' : 'no (reductions in workgroup memory)'}`);
    console.log(`  maxStorageBufferBindingSize: ${adapter.limits.maxStorageBufferBindingSize} bytes`);
  }
  const backend = await createBackend({ kind: 'auto', log: logToStderr, ...(found ? { gpu: found.gpu } : {}) });
  console.log(`\nauto picks:\n${backend.explain()}`);
  backend.dispose();
  return 0;
}
