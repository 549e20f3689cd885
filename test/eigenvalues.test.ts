// The eigenvalue-aware schedule for tfjs (DeepSpeed's eigenvalue.py): power iteration on
// Hessian-vector products finds each block's dominant eigenvalue (the Rayleigh quotient, sign
// kept), normalised across blocks as DESIGN.md says; the weights come back bit for bit.

import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, InvalidInputError } from '../src/errors.js';
import {
  blocksFromLayers,
  blocksFromModel,
  computeBlockEigenvalues,
  dominantEigenvalue,
  finiteDifferenceStep,
  hessianVectorProduct,
  normaliseBlockEigenvalues,
  shouldComputeEigenvalues,
} from '../src/tfjs/eigenvalues.js';
import { uniforms } from './support/fixtures.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
  await tf.ready();
});

// ---------------------------------------------------------------------------------------------
// Quadratic losses L(x) = ½ xᵀ A x with A = Q diag(λ) Qᵀ: the Hessian is A, its spectrum known.

/** A seeded orthogonal matrix (Gram-Schmidt on uniform columns), float64 rows. */
function orthogonal(n: number, seed: number): number[][] {
  const next = uniforms(seed);
  const columns: number[][] = [];
  while (columns.length < n) {
    const c = Array.from({ length: n }, () => next() - 0.5);
    for (const q of columns) {
      const dot = c.reduce((s, x, i) => s + x * q[i]!, 0);
      c.forEach((_, i) => {
        c[i]! -= dot * q[i]!;
      });
    }
    const norm = Math.hypot(...c);
    columns.push(c.map((x) => x / norm));
  }
  return columns;
}

/** Q diag(λ) Qᵀ as a float32 tensor. */
function withSpectrum(spectrum: readonly number[], seed: number): tf.Tensor2D {
  const q = orthogonal(spectrum.length, seed);
  const n = spectrum.length;
  const a = Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => spectrum.reduce((s, l, k) => s + q[k]![i]! * l * q[k]![j]!, 0)));
  return tf.tensor2d(a);
}

/** ½ xᵀAx where x is the concatenation of the variables, flattened. */
function quadratic(a: tf.Tensor2D, variables: readonly tf.Variable[]): tf.Scalar {
  const x = tf.concat(variables.map((v) => v.reshape([-1])));
  return tf.mul(0.5, tf.sum(tf.mul(x, tf.matMul(a, x.reshape([-1, 1])).reshape([-1])))) as tf.Scalar;
}

function variable(values: number[], shape: number[], name?: string): tf.Variable {
  return tf.variable(tf.tensor(values, shape), true, name);
}

const QUADRATICS = [
  { name: 'positive dominant', spectrum: [5, 2, 0.5, -1], dominant: 5 },
  { name: 'negative dominant (sign kept)', spectrum: [-6, 3, 1, 0.5], dominant: -6 },
  { name: 'small curvature', spectrum: [0.02, -0.005, 0.001, 0.0001], dominant: 0.02 },
];

describe('dominant eigenvalue of a known Hessian', () => {
  for (const { name, spectrum, dominant } of QUADRATICS) {
    it(`${name}: λ = ${spectrum.join(', ')} gives ${dominant} within tol`, async () => {
      const a = withSpectrum(spectrum, 7);
      const w = variable([0.3, -1.2, 2, 0.7], [4]);
      const tol = 1e-3;
      const result = await dominantEigenvalue(tf, { loss: () => quadratic(a, [w]), weights: [w], options: { tol } });
      expect(result.converged).toBe(true);
      expect(Math.abs(result.eigenvalue - dominant)).toBeLessThan(tol * Math.abs(dominant));
      tf.dispose([a, w]);
    });
  }

  it('scales the difference step with the weights (large weights, quartic loss)', async () => {
    // L = Σ w⁴/12, H = diag(w²): at w = (1000, 500, 10) the dominant eigenvalue is 1e6. A fixed
    // small step would drown in float32 rounding of gradients near 3e8.
    const w = variable([1000, 500, 10], [3]);
    const result = await dominantEigenvalue(tf, { loss: () => tf.div(tf.sum(tf.pow(w, 4)), 12) as tf.Scalar, weights: [w], options: { tol: 1e-4 } });
    expect(Math.abs(result.eigenvalue - 1e6) / 1e6).toBeLessThan(1e-3);
    expect(finiteDifferenceStep(1118)).toBeGreaterThan(finiteDifferenceStep(0) * 512);
    w.dispose();
  });

  it('gives 0 when the loss is linear in the block (Hv = 0), after one product', async () => {
    const w = variable([1, 2, 3], [3]);
    const result = await dominantEigenvalue(tf, { loss: () => tf.sum(tf.mul(w, tf.tensor1d([1, -2, 3]))) as tf.Scalar, weights: [w] });
    expect(result).toEqual({ eigenvalue: 0, iterations: 1, converged: true });
    w.dispose();
  });
});

describe("iterations: DeepSpeed's stopping rule", () => {
  const spectrum = [5, 3, 0.5, -1];
  const run = (options: { maxIter?: number; tol?: number }, seed = 3) => {
    const a = withSpectrum(spectrum, 11);
    const w = variable([0.1, 0.2, -0.3, 0.4], [4]);
    return dominantEigenvalue(tf, { loss: () => quadratic(a, [w]), weights: [w], options, seed }).finally(() => tf.dispose([a, w]));
  };

  it('stops at the first product whose relative change is below tol', async () => {
    // The same seed replays the same iterates: maxIter = k exposes the k-th Rayleigh quotient.
    const quotients = [1];
    for (let k = 1; k <= 20; k++) quotients.push((await run({ maxIter: k, tol: 1e-12 })).eigenvalue);
    for (const tol of [1e-1, 1e-2, 1e-3, 1e-5]) {
      const expected = quotients.findIndex((q, k) => k > 0 && Math.abs((q - quotients[k - 1]!) / q) < tol);
      expect(expected).toBeGreaterThan(0);
      const result = await run({ tol });
      expect(result.iterations).toBe(expected);
      expect(result.eigenvalue).toBe(quotients[expected]);
      expect(result.converged).toBe(true);
    }
  });

  it('never takes more than maxIter products', async () => {
    for (const maxIter of [1, 2, 5]) {
      const result = await run({ maxIter, tol: 1e-9 });
      expect(result.iterations).toBe(maxIter);
      expect(result.converged).toBe(false);
    }
  });

  it('converges in two products when every eigenvalue is equal (Hv = λv from the start)', async () => {
    const w = variable([1, -1, 2], [3]);
    const result = await dominantEigenvalue(tf, { loss: () => tf.sum(tf.square(w)) as tf.Scalar, weights: [w] });
    expect(result.iterations).toBe(2);
    // stability (1e-6) shortens v a little, so vᵀHv sits just below 2.
    expect(result.eigenvalue).toBeCloseTo(2, 4);
    w.dispose();
  });
});

// ---------------------------------------------------------------------------------------------

describe('normalisation across blocks (DESIGN.md: |λ_b| / max |λ|, 0 maps to 1.0)', () => {
  const CASES: { raw: number[]; normalised: number[] }[] = [
    { raw: [2, -8, 4], normalised: [0.25, 1, 0.5] },
    { raw: [-4, 2], normalised: [1, 0.5] },
    { raw: [3], normalised: [1] },
    { raw: [0, 5], normalised: [1, 1] },
    { raw: [0, 0], normalised: [1, 1] },
    { raw: [Number.NaN, 2, 1], normalised: [1, 1, 0.5] },
    { raw: [Number.POSITIVE_INFINITY, 2], normalised: [1, 1] },
  ];
  for (const { raw, normalised } of CASES) {
    it(`[${raw.join(', ')}] -> [${normalised.join(', ')}]`, () => {
      expect(normaliseBlockEigenvalues(raw)).toEqual(normalised);
    });
  }
});

describe('computeBlockEigenvalues', () => {
  // Two blocks of a block-diagonal Hessian: block 0 spans two variables (λ 4, 1, -2), block 1
  // one (λ -8, 3, 1, 0.5). Expected: block 0 → |4| / 8, block 1 → 1.
  function twoBlocks() {
    const a0 = withSpectrum([4, 1, -2], 5);
    const a1 = withSpectrum([-8, 3, 1, 0.5], 6);
    const x = variable([0.5, -0.25], [2], 'x');
    const y = variable([1], [1], 'y');
    const z = variable([0.1, 0.2, 0.3, 0.4], [2, 2], 'z');
    const loss = () => tf.add(quadratic(a0, [x, y]), quadratic(a1, [z])) as tf.Scalar;
    const blocks = [
      { id: 0, weights: [x, y], parameterNames: ['block0.x', 'block0.y'] },
      { id: 1, weights: [z], parameterNames: ['block1.z'] },
    ];
    return { loss, blocks, dispose: () => tf.dispose([a0, a1, x, y, z]) };
  }

  it('maps every parameter to [normalised eigenvalue, block id]', async () => {
    const { loss, blocks, dispose } = twoBlocks();
    const tol = 1e-4;
    const map = await computeBlockEigenvalues(tf, { loss, blocks, options: { tol } });
    expect([...map.keys()]).toEqual(['block0.x', 'block0.y', 'block1.z']);
    expect(map.get('block0.x')![0]).toBeCloseTo(0.5, 3);
    expect(map.get('block0.y')).toEqual(map.get('block0.x'));
    expect(map.get('block1.z')).toEqual([1, 1]);
    expect(map.get('block0.x')![1]).toBe(0);
    dispose();
  });

  it('defaults parameter names to the variable names', async () => {
    const { loss, blocks, dispose } = twoBlocks();
    const map = await computeBlockEigenvalues(tf, { loss, blocks: blocks.map(({ id, weights }) => ({ id, weights })) });
    expect([...map.keys()]).toEqual(blocks.flatMap((b) => b.weights.map((w) => w.name)));
    dispose();
  });

  it('is deterministic for a seed, and every seed finds the same eigenvalue within tol', async () => {
    const { loss, blocks, dispose } = twoBlocks();
    const tol = 1e-3;
    const first = await computeBlockEigenvalues(tf, { loss, blocks, options: { tol }, seed: 42 });
    const again = await computeBlockEigenvalues(tf, { loss, blocks, options: { tol }, seed: 42 });
    const other = await computeBlockEigenvalues(tf, { loss, blocks, options: { tol }, seed: 7 });
    expect([...again]).toEqual([...first]);
    expect(Math.abs(other.get('block0.x')![0] - first.get('block0.x')![0])).toBeLessThan(4 * tol);
    dispose();
  });

  it("logs DeepSpeed's lines when verbose", async () => {
    const { loss, blocks, dispose } = twoBlocks();
    const lines: string[] = [];
    await computeBlockEigenvalues(tf, { loss, blocks, options: { verbose: true }, logger: (line) => lines.push(line) });
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^block: 0, power iteration: \d+, eigenvalue: 3\.9\d*/);
    expect(lines[1]).toMatch(/^block: 1, power iteration: \d+, eigenvalue: -7\.9\d*/);
    expect(lines[2]).toMatch(/^post processed block_eigenvalue: \[0\.\d+, 1\]$/);
    dispose();
  });
});

// ---------------------------------------------------------------------------------------------
// A small dense network on a fixed batch.

function denseNetwork(activation: 'relu' | 'tanh', seed: number) {
  const next = uniforms(seed);
  const values = (n: number, scale: number) => Array.from({ length: n }, () => (next() - 0.5) * 2 * scale);
  const input = tf.tensor2d(values(8 * 5, 1), [8, 5]);
  const labels = tf.oneHot(tf.tensor1d([0, 1, 2, 0, 1, 2, 0, 1], 'int32'), 3).toFloat();
  const w1 = variable(values(5 * 6, 0.8), [5, 6], `dense1_${activation}/kernel`);
  const b1 = variable(values(6, 0.3), [6], `dense1_${activation}/bias`);
  const w2 = variable(values(6 * 3, 0.8), [6, 3], `dense2_${activation}/kernel`);
  const b2 = variable(values(3, 0.3), [3], `dense2_${activation}/bias`);
  const logits = () => {
    const hidden = tf.add(tf.matMul(input, w1), b1);
    return tf.add(tf.matMul(activation === 'relu' ? tf.relu(hidden) : tf.tanh(hidden), w2), b2);
  };
  const weights = [w1, b1, w2, b2];
  return {
    weights,
    mse: () => tf.mean(tf.square(tf.sub(logits(), labels))) as tf.Scalar,
    crossEntropy: () => tf.losses.softmaxCrossEntropy(labels, logits()) as tf.Scalar,
    direction: (s: number) => weights.map((w) => tf.randomNormal(w.shape, 0, 1, 'float32', s)),
    dispose: () => tf.dispose([input, labels, ...weights]),
  };
}

function relativeError(actual: readonly tf.Tensor[], expected: readonly tf.Tensor[]): number {
  return tf.tidy(() => {
    const difference = tf.sqrt(tf.addN(actual.map((a, i) => tf.sum(tf.square(tf.sub(a, expected[i]!))))));
    const scale = tf.sqrt(tf.addN(expected.map((e) => tf.sum(tf.square(e)))));
    return tf.div(difference, scale).dataSync()[0]!;
  });
}

function bits(weights: readonly tf.Tensor[]): Uint32Array[] {
  return weights.map((w) => new Uint32Array(Float32Array.from(w.dataSync()).buffer));
}

describe('Hessian-vector products on a dense network', () => {
  it('match exact double backprop where tfjs computes it correctly (relu, squared error)', () => {
    // tfjs's second-order gradient is exact for matMul/add/relu/square (their gradients use saved
    // inputs only), so here it is an independent reference.
    const net = denseNetwork('relu', 1);
    const v = net.direction(5);
    const exact = tf.tidy(() => {
      const { value, grads } = tf.variableGrads(() => {
        const { value: inner, grads: g } = tf.variableGrads(net.mse, net.weights);
        inner.dispose();
        return tf.addN(net.weights.map((w, i) => tf.sum(tf.mul(g[w.name]!, v[i]!)))) as tf.Scalar;
      }, net.weights);
      value.dispose();
      return net.weights.map((w) => grads[w.name]!);
    });
    const product = hessianVectorProduct(tf, net.mse, net.weights, v);
    expect(relativeError(product, exact)).toBeLessThan(1e-3);
    tf.dispose([...v, ...exact, ...product]);
    net.dispose();
  });

  it('give vᵀHv equal to the second difference of the loss (tanh, softmax cross-entropy)', () => {
    // Where tfjs's double backprop is wrong: check the curvature along v from loss values alone.
    const net = denseNetwork('tanh', 2);
    const v = net.direction(9);
    const product = hessianVectorProduct(tf, net.crossEntropy, net.weights, v);
    const curvature = tf.tidy(() => tf.addN(product.map((p, i) => tf.sum(tf.mul(p, v[i]!)))).dataSync()[0]!);
    const h = 0.05;
    const original = net.weights.map((w) => w.clone());
    const lossAt = (t: number) => {
      net.weights.forEach((w, i) => w.assign(tf.tidy(() => tf.add(original[i]!, tf.mul(v[i]!, t)))));
      return tf.tidy(() => net.crossEntropy().dataSync()[0]!);
    };
    const second = (lossAt(h) - 2 * lossAt(0) + lossAt(-h)) / (h * h);
    net.weights.forEach((w, i) => w.assign(original[i]!));
    expect(Math.abs(curvature - second) / Math.abs(second)).toBeLessThan(2e-2);
    tf.dispose([...v, ...product, ...original]);
    net.dispose();
  });

  it('restore the weights bit for bit and leak no tensors', async () => {
    const net = denseNetwork('tanh', 3);
    const before = bits(net.weights);
    const tensors = tf.memory().numTensors;
    await computeBlockEigenvalues(tf, {
      loss: net.crossEntropy,
      blocks: [
        { id: 0, weights: net.weights.slice(0, 2) },
        { id: 1, weights: net.weights.slice(2) },
      ],
      options: { maxIter: 20 },
    });
    expect(tf.memory().numTensors).toBe(tensors);
    expect(bits(net.weights)).toEqual(before);
    net.dispose();
  });

  it('restore the weights when the loss throws midway', async () => {
    const net = denseNetwork('relu', 4);
    const before = bits(net.weights);
    let calls = 0;
    const failing = () => {
      if (++calls === 4) throw new Error('loss failed');
      return net.mse();
    };
    await expect(computeBlockEigenvalues(tf, { loss: failing, blocks: [{ id: 0, weights: net.weights }] })).rejects.toThrow('loss failed');
    expect(bits(net.weights)).toEqual(before);
    net.dispose();
  });
});

// ---------------------------------------------------------------------------------------------

describe('blocks from a tfjs model (layer_name as a pattern over layer names, layer_num of them)', () => {
  function model() {
    const encoder = tf.sequential({
      name: 'encoder',
      layers: [
        tf.layers.dense({ units: 6, inputShape: [4], activation: 'tanh', name: 'layer_0' }),
        tf.layers.dropout({ rate: 0.1, name: 'layer_drop' }),
        tf.layers.dense({ units: 6, activation: 'tanh', name: 'layer_1' }),
        tf.layers.dense({ units: 6, activation: 'tanh', name: 'layer_2' }),
      ],
    });
    const input = tf.input({ shape: [4] });
    const output = tf.layers.dense({ units: 3, name: 'head' }).apply(encoder.apply(input)) as tf.SymbolicTensor;
    return tf.model({ inputs: input, outputs: output });
  }

  it('walks nested models in order and takes the first layer_num matches', () => {
    const m = model();
    const blocks = blocksFromModel(m, { layerName: '^layer_\\d$', layerNum: 2 });
    expect(blocks.map((b) => b.id)).toEqual([0, 1]);
    // Variable names are unique per process: a second model's get a suffix ("layer_0/kernel_1").
    expect(blocks.map((b) => b.parameterNames)).toEqual([
      [expect.stringMatching(/^layer_0\/kernel/), expect.stringMatching(/^layer_0\/bias/)],
      [expect.stringMatching(/^layer_1\/kernel/), expect.stringMatching(/^layer_1\/bias/)],
    ]);
    const encoder = m.getLayer('encoder') as tf.Sequential;
    expect(blocks[0]!.weights).toEqual(encoder.getLayer('layer_0').trainableWeights.map((w) => w.read()));
    m.dispose();
  });

  it('feeds computeBlockEigenvalues: the sharpest block gets 1', async () => {
    const m = model();
    const next = uniforms(9);
    const input = tf.tensor2d(
      Array.from({ length: 16 * 4 }, () => next() * 2 - 1),
      [16, 4],
    );
    const labels = tf
      .oneHot(
        tf.tensor1d(
          Array.from({ length: 16 }, (_, i) => i % 3),
          'int32',
        ),
        3,
      )
      .toFloat();
    const loss = () => tf.losses.softmaxCrossEntropy(labels, m.apply(input) as tf.Tensor) as tf.Scalar;
    const blocks = blocksFromModel(m, { layerName: '^layer_\\d$', layerNum: 3 });
    const before = bits(blocks.flatMap((b) => b.weights));
    const map = await computeBlockEigenvalues(tf, { loss, blocks, options: { maxIter: 30 } });
    expect(map.size).toBe(6);
    const values = [...map.values()];
    expect(values.every(([e, id]) => e > 0 && e <= 1 && [0, 1, 2].includes(id))).toBe(true);
    expect(values.some(([e]) => e === 1)).toBe(true);
    expect(bits(blocks.flatMap((b) => b.weights))).toEqual(before);
    tf.dispose([input, labels]);
    m.dispose();
  });

  it('rejects a pattern that finds too few layers, a weightless match, layer_num < 1, a bad regex', () => {
    const m = model();
    const cases: [Parameters<typeof blocksFromModel>[1], string][] = [
      [{ layerName: '^layer_\\d$', layerNum: 4 }, 'eigenvalue.layerName'],
      [{ layerName: '^layer_', layerNum: 2 }, 'eigenvalue.layerName'],
      [{ layerName: '^layer_\\d$', layerNum: 0 }, 'eigenvalue.layerNum'],
      [{ layerName: '^layer_\\d$' }, 'eigenvalue.layerNum'],
      [{ layerName: '(', layerNum: 1 }, 'eigenvalue.layerName'],
    ];
    for (const [options, key] of cases) {
      expect(() => blocksFromModel(m, options)).toThrow(ConfigError);
      try {
        blocksFromModel(m, options);
      } catch (e) {
        expect((e as ConfigError).key).toBe(key);
      }
    }
    m.dispose();
  });

  it('takes an explicit list: one block per entry, a block may span several layers', () => {
    const m = model();
    const encoder = m.getLayer('encoder') as tf.Sequential;
    const blocks = blocksFromLayers([[encoder.getLayer('layer_0'), encoder.getLayer('layer_1')], m.getLayer('head')]);
    expect(blocks.map((b) => [b.id, b.weights.length])).toEqual([
      [0, 4],
      [1, 2],
    ]);
    expect(() => blocksFromLayers([encoder.getLayer('layer_drop')])).toThrow(InvalidInputError);
    expect(() => blocksFromLayers([])).toThrow(InvalidInputError);
    m.dispose();
  });
});

describe('gas_boundary_resolution', () => {
  it('computes at multiples of the resolution, only when enabled', () => {
    const due = (options: Parameters<typeof shouldComputeEigenvalues>[1]) => [1, 2, 3, 4, 5, 6].map((boundary) => shouldComputeEigenvalues(boundary, options));
    expect(due({ enabled: true, gasBoundaryResolution: 3 })).toEqual([false, false, true, false, false, true]);
    expect(due({ enabled: true })).toEqual([true, true, true, true, true, true]);
    expect(due({ enabled: false, gasBoundaryResolution: 1 })).toEqual([false, false, false, false, false, false]);
    expect(() => shouldComputeEigenvalues(0, { enabled: true })).toThrow(InvalidInputError);
    expect(() => shouldComputeEigenvalues(1, { gasBoundaryResolution: 0 })).toThrow(ConfigError);
  });
});

describe('bad input', () => {
  it('rejects bad options with ConfigError naming the key', async () => {
    const w = variable([1, 2], [2]);
    const loss = () => tf.sum(tf.square(w)) as tf.Scalar;
    const cases: [Record<string, unknown>, string][] = [
      [{ maxIter: 0 }, 'options.eigenvalue.maxIter'],
      [{ maxIter: 2.5 }, 'options.eigenvalue.maxIter'],
      [{ tol: 0 }, 'options.eigenvalue.tol'],
      [{ tol: Number.NaN }, 'options.eigenvalue.tol'],
      [{ stability: -1 }, 'options.eigenvalue.stability'],
      [{ max_iter: 10 }, 'options.eigenvalue.max_iter'],
    ];
    for (const [options, key] of cases) {
      const call = computeBlockEigenvalues(tf, { loss, blocks: [{ id: 0, weights: [w] }], options: options as never });
      await expect(call).rejects.toThrow(ConfigError);
      await expect(call).rejects.toHaveProperty('key', key);
    }
    w.dispose();
  });

  it('rejects bad blocks, weights, seeds and losses with InvalidInputError', async () => {
    const w = variable([1, 2], [2], 'bad_input_w');
    const u = variable([3], [1], 'bad_input_u');
    const frozen = tf.variable(tf.tensor1d([1]), false);
    const integers = tf.variable(tf.tensor1d([1], 'int32'));
    const loss = () => tf.sum(tf.square(w)) as tf.Scalar;
    const cases: [string, Parameters<typeof computeBlockEigenvalues>[1]][] = [
      ['no blocks', { loss, blocks: [] }],
      ['empty block', { loss, blocks: [{ id: 0, weights: [] }] }],
      ['plain tensor', { loss, blocks: [{ id: 0, weights: [tf.tensor1d([1]) as never] }] }],
      ['not trainable', { loss, blocks: [{ id: 0, weights: [frozen] }] }],
      ['int32', { loss, blocks: [{ id: 0, weights: [integers] }] }],
      ['fractional id', { loss, blocks: [{ id: 0.5, weights: [w] }] }],
      ['names length', { loss, blocks: [{ id: 0, weights: [w], parameterNames: ['a', 'b'] }] }],
      [
        'duplicate name',
        {
          loss,
          blocks: [
            { id: 0, weights: [w], parameterNames: ['p'] },
            { id: 1, weights: [u], parameterNames: ['p'] },
          ],
        },
      ],
      [
        'variable twice',
        {
          loss,
          blocks: [
            { id: 0, weights: [w] },
            { id: 1, weights: [w], parameterNames: ['other'] },
          ],
        },
      ],
      ['negative seed', { loss, blocks: [{ id: 0, weights: [w] }], seed: -1 }],
      ['loss not a function', { loss: 3 as never, blocks: [{ id: 0, weights: [w] }] }],
      ['loss independent of the block', { loss, blocks: [{ id: 0, weights: [u] }] }],
    ];
    for (const [label, request] of cases) {
      await expect(computeBlockEigenvalues(tf, request), label).rejects.toThrow(InvalidInputError);
    }
    expect(() => hessianVectorProduct(tf, loss, [w], [tf.zeros([3])])).toThrow(InvalidInputError);
    tf.dispose([w, u, frozen, integers]);
  });
});
