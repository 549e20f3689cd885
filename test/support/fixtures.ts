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

/** Quantizer options that take a whole MoQ schedule: stochastic rounding, the mixed-fp16 blend, and the weights stepped from 8 to 3 bits, one bit every period (2 steps, doubling). */
export const MOQ_OPTIONS = {
  groups: 4,
  mixedFp16: true,
  changeRatio: 0.1,
  rounding: 'stochastic' as const,
  seed: 5,
  schedules: [{ startBits: 8, targetBits: 3, period: 2, modules: ['weight'] }],
};

export function randomTensor(length: number, seed: number, scale = 1): Float32Array {
  const next = uniforms(seed);
  return Float32Array.from({ length }, () => Math.fround((next() * 2 - 1) * scale));
}
