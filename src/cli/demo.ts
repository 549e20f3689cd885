// `edge-moq demo`: a small model's parameters driven through a MoQ schedule (8 -> 4 bits) on
// the auto-picked backend. The "training" is a seeded random walk standing in for optimizer
// updates; the quantizer sees the master weights each step, as DeepSpeed's engine does
// (straight-through: master weights stay full precision, the forward copy is quantized).

import { createBackend } from '../backends/select.js';
import type { BackendRequest } from '../backends/backend.js';
import { Quantizer, type Parameter } from '../quantizer.js';
import { integerFlag, type ParsedArgs } from './args.js';

const LAYERS: { name: string; shape: number[] }[] = [
  { name: 'embed.weight', shape: [128, 64] },
  { name: 'block.attention.weight', shape: [64, 64] },
  { name: 'block.attention.bias', shape: [64] },
  { name: 'block.mlp.weight', shape: [256, 64] },
  { name: 'head.weight', shape: [10, 64] },
];

/** xorshift32: a seeded stream of uniforms for the embedded weights and updates. */
function uniforms(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s / 4294967296;
  };
}

function gaussian(next: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());
}

export async function demoCommand(args: ParsedArgs): Promise<number> {
  const steps = integerFlag(args, 'steps', 100, 1);
  const startBits = integerFlag(args, 'start-bits', 8, 1);
  const targetBits = integerFlag(args, 'target-bits', 4, 1);
  const period = integerFlag(args, 'period', 10, 1);
  const groups = integerFlag(args, 'groups', 8, 1);
  const seed = integerFlag(args, 'seed', 1, 0);
  const backend = await createBackend({ kind: (args.flags.get('backend') as BackendRequest | undefined) ?? 'auto' });
  console.log(backend.explain());

  const quantizer = new Quantizer({
    groups, mixedFp16: true, changeRatio: 0.1,
    schedules: [{ name: 'weights', startBits, targetBits, period, modules: ['weight$'] }],
  }, { backend });
  quantizer.onSwitch((e) => console.log(`  switch: ${e.name} -> ${e.bits} bits at step ${e.step}, next period ${e.period}`));

  const next = uniforms(seed);
  const master = LAYERS.map(({ shape }) => {
    const n = shape.reduce((a, b) => a * b, 1);
    return Float32Array.from({ length: n }, () => gaussian(next) * Math.sqrt(2 / shape[shape.length - 1]!));
  });
  const forward: Parameter[] = LAYERS.map(({ name, shape }, i) => ({ name, shape, data: new Float32Array(master[i]!.length) }));
  const quantized = forward.filter((p) => p.shape.length > 1);

  console.log(`\nMoQ ${startBits} -> ${targetBits} bits, period ${period}, ${groups} groups, mixed-fp16 blend, ${steps} steps on ${backend.kind}`);
  console.log(`step  ratio  ${quantized.map((p) => p.name.padStart(22)).join(' ')}  rel. error`);
  for (let step = 1; step <= steps; step++) {
    master.forEach((w) => { for (let j = 0; j < w.length; j++) w[j]! += 1e-3 * gaussian(next); });
    forward.forEach((p, i) => p.data.set(master[i]!));
    const report = await quantizer.step([forward]);
    let errorSquares = 0, signalSquares = 0;
    for (const p of quantized) {
      const w = master[forward.indexOf(p)]!;
      for (let j = 0; j < w.length; j++) {
        errorSquares += (p.data[j]! - w[j]!) ** 2;
        signalSquares += w[j]! ** 2;
      }
    }
    const bits = quantized.map((p) => `${quantizer.bitsOf(p.name)} bits`.padStart(22)).join(' ');
    console.log(`${String(step).padStart(4)}  ${report.ratio.toFixed(2)}  ${bits}  ${Math.sqrt(errorSquares / signalSquares).toExponential(2)}`);
  }
  console.log(`\nran on ${backend.kind}; ${quantized.length} of ${forward.length} tensors quantized (1-D tensors stay full precision, as in MoQ)`);
  backend.dispose();
  return 0;
}
