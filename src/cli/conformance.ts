// `edge-moq conformance <file.json> [--backend ...]`

import { readFile } from 'node:fs/promises';
import { createBackend } from '../backends/select.js';
import { nodeGpu } from '../backends/webgpu/node-gpu.js';
import { logToStderr } from './packer.js';
import type { BackendRequest } from '../backends/backend.js';
import { runConformance } from '../conformance.js';
import { EdgeMoqError } from '../errors.js';
import type { ParsedArgs } from './args.js';
import { escapeForTerminal } from './terminal.js';

export async function conformanceCommand(args: ParsedArgs): Promise<number> {
  const [file] = args.positionals;
  if (!file) throw new EdgeMoqError('INVALID_ARGUMENT', 'usage: edge-moq conformance <file.json> [--backend auto|webgpu|wasm-simd|wasm]');
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(file, 'utf8'));
  } catch (cause) {
    throw new EdgeMoqError('CONFORMANCE_FILE', `cannot read ${file}: ${(cause as Error).message}`, { cause });
  }
  const kind = (args.flags.get('backend') as BackendRequest | undefined) ?? 'auto';
  // In Node the GPU comes from the `webgpu` package, loaded only when WebGPU may be picked.
  const gpu = kind === 'webgpu' || kind === 'auto' ? (await nodeGpu())?.gpu : undefined;
  const backend = await createBackend({ kind, log: logToStderr, ...(gpu ? { gpu } : {}) });
  console.log(`conformance: ${escapeForTerminal(file)} on ${backend.kind}`);
  // Case ids and details come from the file.
  const report = await runConformance(parsed, backend, (r) => {
    if (!r.passed) console.log(`FAIL ${escapeForTerminal(r.id)}: ${escapeForTerminal(r.detail ?? '')}`);
    else if (r.nearTies) console.log(`near-tie ${escapeForTerminal(r.id)}: ${r.nearTies} value(s) one grid step away at a rounding tie (allowed on WebGPU)`);
  });
  if (report.nearTieCases) console.log(`${report.nearTieCases} case(s) passed with near-tie values`);
  console.log(`${report.passed} passed, ${report.failed} failed`);
  backend.dispose();
  return report.failed === 0 ? 0 : 1;
}
