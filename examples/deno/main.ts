// edge-moq in Deno: `deno install`, then `deno run --allow-read main.ts [backend]`
// (backend: auto, webgpu, wasm-simd or wasm). --allow-read lets edge-moq read its .wasm files.

import { createBackend, Quantizer, type BackendRequest, type Parameter } from 'edge-moq';

const backend = await createBackend({ kind: (Deno.args[0] ?? 'auto') as BackendRequest });
console.log(backend.explain());

// A smooth 64x64 weight matrix, quantized to 4 bits in 8 groups.
const weights = Float32Array.from({ length: 64 * 64 }, (_, i) => Math.fround(Math.sin(i * 0.37) * 0.5));
const quantized = await backend.fakeQuantize(weights.slice(), { bits: 4, groups: 8 });
const maxError = quantized.reduce((worst, q, i) => Math.max(worst, Math.abs(q - weights[i]!)), 0);
console.log(`4 bits: ${new Set(weights).size} distinct values became ${new Set(quantized).size}; largest error ${maxError.toFixed(4)}`);

// MoQ: start at 8 bits and step down to 4, one bit per period, the period doubling at each switch.
const quantizer = new Quantizer({ groups: 8, schedules: [{ startBits: 8, targetBits: 4, period: 2 }] }, { backend });
quantizer.onSwitch((e) => console.log(`step ${e.step}: ${e.name} now ${e.bits} bits (next period ${e.period})`));
const params: Parameter[] = [{ name: 'layer.weight', shape: [64, 64], data: weights.slice() }];
for (let step = 0; step < 40; step++) await quantizer.step([params]);
console.log(`after 40 steps: ${quantizer.bitsOf('layer.weight')} bits`);
backend.dispose();
