// Per-step cost of MoQ on tfjs's WebGPU backend: the host path (weights read back, quantized on
// the host, uploaded) against the GPU path (quantized on tfjs's device, nothing read back), in
// the same run, on the same model, data and schedule. Node through Dawn: on this project's
// machines that is SwiftShader, whose speed says nothing about a real GPU; the ratio says how
// much of a step the round trip takes there.
//
// Each mode trains a fresh copy of the model with optimizer.minimize (no cost read back) and
// afterStep(); a round times STEPS steps, ending with one read so the GPU's queue has drained.
// MoQ's overhead is a mode's time per step less that of the same loop without MoQ.
//   npm run bench:tfjs-webgpu      (LAYERS=784,256,128,10 STEPS=20 ROUNDS=3 to change)

import { existsSync } from 'node:fs';

const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';
if (existsSync(SWIFTSHADER_ICD)) process.env.VK_ICD_FILENAMES ??= SWIFTSHADER_ICD;

const LAYERS = (process.env.LAYERS ?? '784,256,128,10').split(',').map(Number);
const STEPS = Number(process.env.STEPS ?? 20);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const BATCH = 32;
const QUANTIZER = { groups: 8, schedules: [{ startBits: 8, targetBits: 4, period: 8 }] };

const { create, globals } = await import('webgpu');
Object.assign(globalThis, globals);
const gpu = create([]);
// tfjs-backend-webgpu registers itself on import only if navigator.gpu exists.
Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true });
const tf = await import('@tensorflow/tfjs');
await import('@tensorflow/tfjs-backend-webgpu');
const { attachMoq } = await import('../dist/tfjs/index.js');
await tf.setBackend('webgpu');
tf.env().set('PROD', true);

/**
 * @param {number} length
 * @param {number} seed
 */
function pattern(length, seed) {
  const out = new Float32Array(length);
  let state = (seed * 2654435761) >>> 0;
  for (let i = 0; i < length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    out[i] = ((state / 2 ** 32) * 2 - 1) * 0.1;
  }
  return out;
}

function buildModel() {
  const model = tf.sequential();
  LAYERS.slice(1).forEach((units, i) =>
    model.add(
      tf.layers.dense({
        name: `dense${i}`,
        units,
        activation: i < LAYERS.length - 2 ? 'relu' : 'linear',
        ...(i === 0 ? { inputShape: [LAYERS[0]] } : {}),
      }),
    ),
  );
  model.setWeights(
    model.weights.map((w, i) => {
      // Every weight of a built model has a known shape.
      const shape = /** @type {number[]} */ (w.shape);
      return tf.tensor(
        pattern(
          shape.reduce((a, b) => a * b, 1),
          i + 1,
        ),
        shape,
      );
    }),
  );
  return model;
}

const x = tf.tensor2d(pattern(BATCH * LAYERS[0], 91), [BATCH, LAYERS[0]]);
const OUTPUTS = /** @type {number} */ (LAYERS.at(-1));
const y = tf.tensor2d(pattern(BATCH * OUTPUTS, 92), [BATCH, OUTPUTS]);

/** @typedef {'none' | 'host' | 'gpu'} Mode */

/**
 * Times STEPS steps of `mode` on a fresh model.
 * @param {Mode} mode
 * @returns {Promise<{ total: number, afterStep: number }>} ms per step, in all and in afterStep
 */
async function round(mode) {
  const model = buildModel();
  // The layers' own variables: minimize takes them as the list to train.
  const variables = /** @type {import('@tensorflow/tfjs').Variable[]} */ (model.trainableWeights.map((w) => w.read()));
  const optimizer = tf.train.sgd(0.01);
  const moq = mode === 'none' ? null : await attachMoq(tf, model, { quantizer: QUANTIZER, path: mode });
  if (moq && moq.path.kind !== mode) throw new Error(`asked for the ${mode} path, got ${moq.path.kind}: ${moq.path.reason}`);
  const step = async () => {
    optimizer.minimize(() => tf.losses.meanSquaredError(y, /** @type {import('@tensorflow/tfjs').Tensor} */ (model.apply(x))), false, variables);
    if (!moq) return 0;
    const start = performance.now();
    await moq.afterStep();
    return performance.now() - start;
  };
  for (let i = 0; i < 3; i++) await step(); // pipelines compiled, buffers pooled
  await variables[0].data();
  let inAfterStep = 0;
  const start = performance.now();
  for (let i = 0; i < STEPS; i++) inAfterStep += await step();
  await variables[0].data();
  const total = (performance.now() - start) / STEPS;
  moq?.detach();
  model.dispose();
  optimizer.dispose();
  return { total, afterStep: inAfterStep / STEPS };
}

/** @param {number[]} values */
const median = (values) => values.slice().sort((a, b) => a - b)[Math.floor(values.length / 2)];
/** @type {Mode[]} */
const MODES = ['none', 'host', 'gpu'];
/** @type {Record<Mode, { total: number, afterStep: number }[]>} */
const results = { none: [], host: [], gpu: [] };
for (let r = 0; r < ROUNDS; r++) {
  for (const mode of MODES) results[mode].push(await round(mode));
}
// tfjs-backend-webgpu's backend has adapterInfo; tfjs's KernelBackend type does not name it.
const info = /** @type {{ adapterInfo?: { vendor?: string, architecture?: string } }} */ (/** @type {unknown} */ (tf.backend())).adapterInfo;
const parameters = LAYERS.slice(1).reduce((sum, units, i) => sum + LAYERS[i] * units + units, 0);
console.log(`tfjs ${tf.version.tfjs} on webgpu (${[info?.vendor, info?.architecture].filter(Boolean).join(' / ')}), Dawn in Node`);
console.log(`model dense ${LAYERS.join('→')} (${parameters} parameters), batch ${BATCH}, ${STEPS} steps × ${ROUNDS} rounds, medians`);
const base = median(results.none.map((r) => r.total));
const rows = MODES.map((mode) => {
  const total = median(results[mode].map((r) => r.total));
  return { mode, total, overhead: total - base, afterStep: median(results[mode].map((r) => r.afterStep)) };
});
console.log('path   ms/step  MoQ overhead ms/step  in afterStep ms/step');
for (const row of rows) {
  console.log(
    `${row.mode.padEnd(6)} ${row.total.toFixed(2).padStart(7)}  ${(row.mode === 'none' ? '-' : row.overhead.toFixed(2)).padStart(20)}  ${(row.mode === 'none' ? '-' : row.afterStep.toFixed(2)).padStart(19)}`,
  );
}
const [host, gpuRow] = [rows[1], rows[2]];
console.log(`MoQ overhead host/gpu: ${(host.overhead / gpuRow.overhead).toPrecision(2)}; step host/gpu: ${(host.total / gpuRow.total).toPrecision(3)}`);
// The host path's afterStep waits for the step's GPU work to drain before it can read the
// weights; the GPU path's only submits, and JavaScript carries on.
console.log(`afterStep blocks JavaScript: host ${host.afterStep.toFixed(1)} ms, gpu ${gpuRow.afterStep.toFixed(1)} ms per step`);
tf.dispose([x, y]);
process.exit(0);
