// MoQ training of a TensorFlow.js model: `npm run build`, then `node examples/tfjs-training.mjs`.
// The forward pass runs on quantized weights that step down from 8 to 4 bits while the optimizer
// trains full-precision masters; export() packs the model as it trained, which loads back
// through packedModel with the same loss; detach() puts the masters back.

import * as tf from '@tensorflow/tfjs';
import { attachMoq, packedModel } from 'edge-moq/tfjs';

await tf.setBackend('cpu');

// A small regression task: y = tanh(x · w).
const x = tf.randomUniform([512, 8], -1, 1, 'float32', 1);
const y = tf.tanh(tf.matMul(x, tf.randomNormal([8, 1], 0, 1, 'float32', 2)));

const model = tf.sequential({
  layers: [
    tf.layers.dense({ name: 'hidden', units: 32, activation: 'relu', inputShape: [8] }),
    tf.layers.dense({ name: 'out', units: 1 }),
  ],
});
model.compile({ optimizer: tf.train.adam(0.01), loss: 'meanSquaredError' });

// A DeepSpeed config, as it is: 8 bits down to 4, one bit per period, the period doubling.
const deepSpeedConfig = {
  compression_training: {
    weight_quantization: {
      shared_parameters: { enabled: true, quantize_groups: 4, quantize_verbose: true },
      different_groups: {
        wq1: { params: { start_bits: 8, target_bits: 4, quantization_period: 16 }, modules: ['hidden', 'out'] },
      },
    },
  },
};
const moq = await attachMoq(tf, model, { quantizer: deepSpeedConfig });
console.log(`quantized: ${moq.weights.filter((w) => w.quantized).map((w) => w.name).join(', ')}; biases stay full precision`);

// With model.fit: the callback runs after every optimizer step.
await model.fit(x, y, { epochs: 12, batchSize: 32, verbose: 0, callbacks: [moq.callback()] });

// In a custom loop: afterStep after every optimizer step.
const optimizer = model.optimizer;
for (let step = 0; step < 32; step++) {
  const loss = optimizer.minimize(() => tf.losses.meanSquaredError(y, model.predict(x)), true);
  await moq.afterStep({ loss });
  loss.dispose();
}

const evaluate = () => tf.tidy(() => model.evaluate(x, y).dataSync()[0]);
const last = moq.history.at(-1);
console.log(`after ${last.step} steps: bits ${JSON.stringify(last.bits)}, loss on quantized weights ${evaluate().toFixed(4)}`);
// Ship it: the weights packed from the masters at their final bits (writePackedTfjsModel from
// edge-moq/node writes the folder), loaded back as any server or Worker would load it.
const exported = await moq.export();
const loaded = await tf.loadLayersModel(packedModel(exported));
const reloadedLoss = tf.tidy(() => tf.losses.meanSquaredError(y, loaded.predict(x)).dataSync()[0]);
console.log(`exported: ${exported.weights.length} bytes of weights (float32: ${exported.report.floatBytes}); loss after loading it back ${reloadedLoss.toFixed(4)}`);

moq.detach();
console.log(`loss on the full-precision masters: ${evaluate().toFixed(4)}`);
