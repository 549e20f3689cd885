import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { uniforms } from './uniforms.mjs';

/** The DeepSpeed vectors, vendored (test/fixtures/conformance/README.md). */
export const CONFORMANCE_PATH = fileURLToPath(new URL('../fixtures/conformance/deepspeed-moq.json', import.meta.url));

let cached: { cases: { id: string; kind: string; [key: string]: unknown }[] } | undefined;

/** The DeepSpeed conformance file (parsed once per test file). */
export function conformanceFile(): { format: string; cases: { id: string; kind: string; [key: string]: unknown }[] } {
  cached ??= JSON.parse(readFileSync(CONFORMANCE_PATH, 'utf8'));
  return cached as never;
}

export { uniforms };

export function randomTensor(length: number, seed: number, scale = 1): Float32Array {
  const next = uniforms(seed);
  return Float32Array.from({ length }, () => Math.fround((next() * 2 - 1) * scale));
}
