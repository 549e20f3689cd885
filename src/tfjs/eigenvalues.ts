// DeepSpeed's eigenvalue-aware MoQ schedule (deepspeed/runtime/eigenvalue.py) for TensorFlow.js:
// the dominant Hessian eigenvalue of the loss with respect to each block's weights, by power
// iteration, normalised across blocks into the `blockEigenvalue` map that Quantizer.step takes
// (a block with a sharper loss stretches its parameters' periods: period *= 1 + floor(4 * eigen)).
//
// Hessian-vector products are central differences of gradients, not double backprop. tfjs 4.22
// does run tf.grad of tf.grad, but silently drops every second-order term that flows through a
// tensor a kernel saved from its own output (tanh, sigmoid, softmax, exp, ...): the engine clones
// a saved output onto the tape before the kernel's own node, so the outer backward pass never
// reaches it. The result is exact only where gradients use saved inputs alone (matMul, relu,
// squared error); on a tanh or softmax cross-entropy network it is off by half or more, with no
// error raised. Differences of gradients rely only on first-order gradients, which tfjs gets
// right for every op it can train; each product costs two gradient evaluations.
//
// tfjs is an optional peer dependency: everything here takes the caller's `tf` module.

import type * as tfjs from '@tensorflow/tfjs';
import { compileModulePattern, EIGENVALUE_DEFAULTS, resolveQuantizerOptions, type EigenvalueOptions } from '../config.js';
import { describeValue } from '../describe.js';
import { ConfigError, InvalidInputError } from '../errors.js';
import { noiseKey } from '../noise.js';

/** The parts of the tfjs module this file uses (tfjs, tfjs-core or tfjs-node all fit). */
export type TfEigenvalueModule = Pick<
  typeof tfjs,
  'tidy' | 'keep' | 'dispose' | 'variableGrads' | 'randomNormal' | 'zerosLike' | 'add' | 'sub' | 'mul' | 'div' | 'sum' | 'addN' | 'sqrt' | 'where' | 'isFinite'
>;

/** One block (DeepSpeed: one entry of the `layer_name` module list) and its weights. */
export interface EigenvalueBlock {
  /** The block index reported with each eigenvalue (DeepSpeed: the layer's position, 0-based). */
  id: number;
  /** Trainable float32 variables; the loss must depend on them. */
  weights: readonly tfjs.Variable[];
  /** Key of each weight in the result; defaults to the variable's name. */
  parameterNames?: readonly string[];
}

/** What computeBlockEigenvalues measures: the loss and the blocks of weights. */
export interface BlockEigenvalueRequest {
  /** The loss on a fixed batch, computed from the variables' current values; no randomness. */
  loss: () => tfjs.Scalar;
  blocks: readonly EigenvalueBlock[];
  /** maxIter, tol, stability, verbose are read here; defaults are DeepSpeed's. */
  options?: Partial<EigenvalueOptions>;
  /** Seed of the starting vectors (default 0). Every block starts from the same stream, as in DeepSpeed. */
  seed?: number;
  /** Receives DeepSpeed's verbose lines when `options.verbose` is set (default console.log). */
  logger?: (line: string) => void;
}

/** A block's power iteration: the eigenvalue and how it ended. */
export interface PowerIterationResult {
  /** The last Rayleigh quotient vᵀHv, sign kept: the eigenvalue of largest magnitude. */
  eigenvalue: number;
  /** Hessian-vector products taken (at most maxIter). */
  iterations: number;
  /** The relative change fell below tol, or Hv vanished. False when maxIter cut it short. */
  converged: boolean;
}

/** A tfjs layer, model or container: what blocksFromLayers reads. */
export interface LayerLike {
  readonly name: string;
  // originalName ("dense/kernel") is stable; tfjs suffixes `name` once another model used it.
  readonly trainableWeights: readonly {
    readonly name: string;
    readonly originalName?: string;
    /** The weight's current value. */
    read(): tfjs.Tensor;
  }[];
  readonly layers?: readonly LayerLike[];
}

/** Fills DeepSpeed's defaults and checks every key (ConfigError names the key). */
export function resolveEigenvalueOptions(options: Partial<EigenvalueOptions> = {}): EigenvalueOptions {
  return resolveQuantizerOptions({ eigenvalue: options }).eigenvalue;
}

/**
 * Whether eigenvalues are due at this gradient-accumulation boundary (1-based count of optimizer
 * steps, DeepSpeed's gas_boundary_ctr after its increment): enabled, and a multiple of
 * gasBoundaryResolution. DeepSpeed also requires quantizer.anyPrecisionSwitch(), and hands the
 * eigenvalues only to the step they were computed for: other steps get none (factor 1).
 * @param boundary - the 1-based count of optimizer steps
 * @param options - the eigenvalue options (`enabled`, `gasBoundaryResolution`)
 * @returns whether to compute eigenvalues at this boundary
 */
export function shouldComputeEigenvalues(boundary: number, options: Partial<EigenvalueOptions> = {}): boolean {
  if (!Number.isInteger(boundary) || boundary < 1) {
    throw new InvalidInputError('INVALID_ARGUMENT', `boundary must be the 1-based count of optimizer steps (an integer >= 1), got ${describeValue(boundary)}.`);
  }
  const o = resolveEigenvalueOptions(options);
  return o.enabled && boundary % o.gasBoundaryResolution === 0;
}

/**
 * DeepSpeed's post-processing: |λ_b| / max |λ|, so the sharpest block gets 1.0. A block whose
 * eigenvalue is 0 (or not finite: it could not be measured) gets 1.0, as DeepSpeed does for
 * blocks it cannot evaluate; non-finite values are left out of the maximum.
 * @param values - one eigenvalue per block
 * @returns the normalised values, in the same order
 */
export function normaliseBlockEigenvalues(values: readonly number[]): number[] {
  const largest = values.reduce((max, v) => (Number.isFinite(v) ? Math.max(max, Math.abs(v)) : max), 0);
  return values.map((v) => (v === 0 || !Number.isFinite(v) ? 1 : Math.abs(v) / largest));
}

/**
 * Eigenvalues for every block: each parameter name maps to [normalised eigenvalue, block id],
 * the `blockEigenvalue` format of Quantizer.step. The variables are restored bit for bit.
 * @param tf - the TensorFlow.js namespace the model was built with
 * @param request - the loss, the blocks, the options and the seed
 * @returns [normalised eigenvalue, block id] by parameter name
 * @throws ConfigError naming an eigenvalue option that is wrong; InvalidInputError for no blocks, or a weight in two blocks
 */
export async function computeBlockEigenvalues(tf: TfEigenvalueModule, request: BlockEigenvalueRequest): Promise<Map<string, [number, number]>> {
  const { loss, blocks, seed = 0, logger = (line: string) => console.log(line) } = request;
  const options = resolveEigenvalueOptions(request.options);
  checkLoss(loss);
  checkSeed(seed);
  if (!Array.isArray(blocks) || blocks.length === 0) {
    throw new InvalidInputError('INVALID_ARGUMENT', 'blocks must be a non-empty list of { id, weights, parameterNames? }; see blocksFromModel.');
  }
  const names = blocks.map((block, b) => checkBlock(block, `blocks[${b}]`));
  const seen = new Map<string, string>();
  const variables = new Set<tfjs.Variable>();
  blocks.forEach((block, b) =>
    names[b]!.forEach((name, i) => {
      const where = `blocks[${b}].parameterNames[${i}]`;
      const before = seen.get(name);
      if (before !== undefined) throw new InvalidInputError('INVALID_ARGUMENT', `${where}: "${name}" is also ${before}; each parameter belongs to one block.`);
      seen.set(name, where);
      const weight = block.weights[i]!;
      if (variables.has(weight)) throw new InvalidInputError('INVALID_ARGUMENT', `blocks[${b}].weights[${i}] ("${weight.name}") appears twice; each variable belongs to one block.`);
      variables.add(weight);
    }),
  );

  const raw: number[] = [];
  for (const block of blocks) {
    const result = await powerIteration(tf, loss, block.weights, options, seed, `block ${block.id}`);
    if (options.verbose) logger(`block: ${block.id}, power iteration: ${result.iterations}, eigenvalue: ${result.eigenvalue}`);
    raw.push(result.eigenvalue);
  }
  const normalised = normaliseBlockEigenvalues(raw);
  if (options.verbose) logger(`post processed block_eigenvalue: [${normalised.join(', ')}]`);
  const map = new Map<string, [number, number]>();
  blocks.forEach((block, b) => names[b]!.forEach((name) => map.set(name, [normalised[b]!, block.id])));
  return map;
}

/**
 * The dominant Hessian eigenvalue of `loss` over `weights` alone (one block), with diagnostics.
 * @param tf - the TensorFlow.js namespace the model was built with
 * @param request - the loss, the block's weights, the options and the seed
 * @returns the eigenvalue of largest magnitude, the iterations taken and whether they converged
 */
export async function dominantEigenvalue(
  tf: TfEigenvalueModule,
  request: { loss: () => tfjs.Scalar; weights: readonly tfjs.Variable[]; options?: Partial<EigenvalueOptions>; seed?: number },
): Promise<PowerIterationResult> {
  const options = resolveEigenvalueOptions(request.options);
  const seed = request.seed ?? 0;
  checkLoss(request.loss);
  checkSeed(seed);
  checkWeights(request.weights, 'weights');
  return powerIteration(tf, request.loss, request.weights, options, seed, 'weights');
}

/**
 * H·direction for the Hessian of `loss` over `weights`:
 * (∇L(w + εd) − ∇L(w − εd)) / 2ε, with ε = finiteDifferenceStep(‖w‖, ‖d‖). The variables are
 * reassigned their original tensors afterwards (same data, bit for bit), even if the loss throws.
 * @param tf - the TensorFlow.js namespace the model was built with
 * @param loss - the loss, computed from the variables' current values
 * @param weights - the variables
 * @param direction - d, one tensor per variable, of its shape
 * @returns H·d, one tensor per variable (the caller disposes them)
 */
export function hessianVectorProduct(tf: TfEigenvalueModule, loss: () => tfjs.Scalar, weights: readonly tfjs.Variable[], direction: readonly tfjs.Tensor[]): tfjs.Tensor[] {
  checkWeights(weights, 'weights');
  if (!Array.isArray(direction) || direction.length !== weights.length || direction.some((d, i) => !sameShape(d?.shape, weights[i]!.shape))) {
    throw new InvalidInputError('INVALID_ARGUMENT', `direction must hold one tensor per weight, shaped like it (shapes ${weights.map((w) => `[${w.shape.join(', ')}]`).join(', ')}).`);
  }
  return differenceOfGradients(tf, loss, weights, direction, 'weights');
}

// ∛(2^-23) ≈ 2^-7.7: the step minimising truncation plus rounding error of a float32 central difference.
const RELATIVE_STEP = Math.cbrt(2 ** -23);

/**
 * Central-difference step ε for weights of norm ‖w‖ and a direction of norm ‖d‖: the
 * perturbation ε‖d‖ is about ∛(float32 epsilon) × (1 + ‖w‖), which balances float32 rounding
 * in the gradients against the change of curvature, and ε is rounded to a power of two so that
 * scaling the direction and dividing by 2ε add no rounding.
 */
export function finiteDifferenceStep(weightNorm: number, directionNorm = 1): number {
  return 2 ** Math.round(Math.log2((RELATIVE_STEP * (1 + weightNorm)) / directionNorm));
}

/**
 * Blocks from a tfjs model and DeepSpeed's layer_name / layer_num. DeepSpeed reads layer_name as
 * an attribute path to a module list (`bert.encoder.layer`) and takes its first layer_num
 * entries. tfjs models have no attribute paths, so here layer_name is a regular expression
 * searched in layer names (as DeepSpeed's module patterns are; "*" matches all): the layers are
 * walked depth first in model order, a matching layer is one block (its sub-layers are not
 * visited further), and the first layer_num matches are the blocks, ids 0, 1, ... Parameter names
 * are the layers' weight names (the variables' names, e.g. "encoder_0/kernel").
 * @param model - a tfjs model (or any container of layers)
 * @param options - `layerName` (the pattern) and `layerNum` (how many blocks)
 * @returns the blocks, ids 0, 1, ... in model order
 * @throws ConfigError when layerName or layerNum is missing or wrong; InvalidInputError when `model` has no layers list
 */
export function blocksFromModel(model: { readonly layers: readonly LayerLike[] }, options: Partial<Pick<EigenvalueOptions, 'layerName' | 'layerNum'>> = {}): EigenvalueBlock[] {
  const layerName = options.layerName ?? EIGENVALUE_DEFAULTS.layerName;
  const layerNum = options.layerNum ?? EIGENVALUE_DEFAULTS.layerNum;
  if (typeof layerName !== 'string' || layerName === '') {
    throw new ConfigError('eigenvalue.layerName', `must be a non-empty regular expression matching the block layers' names, got ${describeValue(layerName)}.`);
  }
  if (!Number.isInteger(layerNum) || layerNum < 1) {
    throw new ConfigError('eigenvalue.layerNum', `must be the number of blocks (an integer >= 1), got ${describeValue(layerNum)}; DeepSpeed requires it too when eigenvalues are enabled.`);
  }
  if (typeof model !== 'object' || model === null || !Array.isArray(model.layers)) {
    throw new InvalidInputError('INVALID_ARGUMENT', 'model must be a tfjs LayersModel (or anything with a layers list).');
  }
  const pattern = compileModulePattern(layerName, 'eigenvalue.layerName');
  const matched: LayerLike[] = [];
  const visit = (layers: readonly LayerLike[]) => {
    for (const layer of layers) {
      if (pattern.test(layer.name)) matched.push(layer);
      else if (Array.isArray(layer.layers)) visit(layer.layers);
    }
  };
  visit(model.layers);
  if (matched.length < layerNum) {
    throw new ConfigError(
      'eigenvalue.layerName',
      `/${layerName}/ matches ${matched.length} layer${matched.length === 1 ? '' : 's'}` +
        `${matched.length ? ` (${matched.map((l) => l.name).join(', ')})` : ''} but layerNum asks for ${layerNum}; ` +
        `name the block layers so that the pattern finds them, or lower layerNum.`,
    );
  }
  const chosen = matched.slice(0, layerNum);
  const empty = chosen.find((layer) => layer.trainableWeights.length === 0);
  if (empty) {
    throw new ConfigError('eigenvalue.layerName', `/${layerName}/ matches layer "${empty.name}", which has no trainable weights; make the pattern match only the block layers.`);
  }
  return blocksFromLayers(chosen);
}

/**
 * Blocks given explicitly: entry b (a layer, or several layers that form one block) becomes
 * block b with the layers' trainable weights, in order.
 * @param blocks - a layer or a list of layers per block
 * @returns block b for entry b
 */
export function blocksFromLayers(blocks: readonly (LayerLike | readonly LayerLike[])[]): EigenvalueBlock[] {
  if (!Array.isArray(blocks) || blocks.length === 0) {
    throw new InvalidInputError('INVALID_ARGUMENT', 'blocks must be a non-empty list of layers (or lists of layers), one entry per block.');
  }
  return blocks.map((entry, id) => {
    const layers: readonly LayerLike[] = Array.isArray(entry) ? entry : [entry as LayerLike];
    const weights = layers.flatMap((layer) => layer.trainableWeights);
    if (weights.length === 0) {
      throw new InvalidInputError('INVALID_ARGUMENT', `block ${id} (${layers.map((l) => `"${l.name}"`).join(', ')}) has no trainable weights; pick layers that hold weights.`);
    }
    return {
      id,
      weights: weights.map((w) => w.read() as tfjs.Variable),
      // The names edge-moq/tfjs gives the weights (attachMoq's MoqWeight.name).
      parameterNames: weights.map((w) => w.originalName ?? w.name),
    };
  });
}

// ---------------------------------------------------------------------------------------------

async function powerIteration(
  tf: TfEigenvalueModule,
  loss: () => tfjs.Scalar,
  weights: readonly tfjs.Variable[],
  options: EigenvalueOptions,
  seed: number,
  label: string,
): Promise<PowerIterationResult> {
  // The starting vector is a function of the seed and the tensor's position only, so each block
  // starts from the same stream (DeepSpeed restores the RNG state around its randn) and the
  // global tfjs random state is untouched.
  let v = tf.tidy(() =>
    normalise(
      tf,
      weights.map((w, i) => tf.randomNormal(w.shape, 0, 1, 'float32', noiseKey(seed, 0, i))),
      options.stability,
    ),
  );
  let current = 1;
  let previous = 0;
  let iterations = 0;
  // DeepSpeed's loop, checked after each product: stop on a relative change below tol, on a zero
  // Rayleigh quotient, or after maxIter products.
  try {
    do {
      previous = current;
      const hv = tf.tidy(() => differenceOfGradients(tf, loss, weights, v, label).map((t) => zeroNonFinite(tf, t)));
      const quotient = tf.tidy(() => innerProduct(tf, hv, v));
      current = (await quotient.data())[0]!;
      quotient.dispose();
      const next = tf.tidy(() => normalise(tf, hv, options.stability));
      tf.dispose(hv);
      tf.dispose(v);
      v = next;
      iterations++;
    } while (iterations < options.maxIter && current !== 0 && Math.abs((current - previous) / current) >= options.tol);
  } finally {
    tf.dispose(v);
  }
  const converged = current === 0 || Math.abs((current - previous) / current) < options.tol;
  return { eigenvalue: current, iterations, converged };
}

function differenceOfGradients(tf: TfEigenvalueModule, loss: () => tfjs.Scalar, weights: readonly tfjs.Variable[], direction: readonly tfjs.Tensor[], label: string): tfjs.Tensor[] {
  // Keeping the original tensors and assigning them back restores the very same data.
  const originals = weights.map((w) => tf.keep(w.clone()));
  try {
    const [weightNormSquared, directionNormSquared] = tf.tidy(() => [innerProduct(tf, originals, originals), innerProduct(tf, direction, direction)].map((t) => t.dataSync()[0]!));
    const directionNorm = Math.sqrt(directionNormSquared!);
    if (!(directionNorm > 0) || !Number.isFinite(directionNorm)) return weights.map((w) => tf.zerosLike(w));
    const step = finiteDifferenceStep(Math.sqrt(weightNormSquared!), directionNorm);
    const gradientAt = (offset: number) =>
      tf.tidy(() => {
        weights.forEach((w, i) => w.assign(tf.add(originals[i]!, tf.mul(direction[i]!, offset))));
        return gradients(tf, loss, weights, label);
      });
    const plus = gradientAt(step);
    const minus = gradientAt(-step);
    const product = tf.tidy(() => plus.map((g, i) => tf.div(tf.sub(g, minus[i]!), 2 * step)));
    tf.dispose([...plus, ...minus]);
    return product;
  } finally {
    weights.forEach((w, i) => w.assign(originals[i]!));
    tf.dispose(originals);
  }
}

function gradients(tf: TfEigenvalueModule, loss: () => tfjs.Scalar, weights: readonly tfjs.Variable[], label: string): tfjs.Tensor[] {
  let result: ReturnType<typeof tfjs.variableGrads>;
  try {
    result = tf.variableGrads(loss, weights as tfjs.Variable[]);
  } catch (e) {
    if (/connection between any variable/.test((e as Error)?.message ?? '')) {
      throw new InvalidInputError('INVALID_ARGUMENT', `${label}: the loss does not depend on these weights; give blocks whose weights the loss uses.`, { cause: e });
    }
    throw e;
  }
  result.value.dispose();
  // A weight the loss does not touch has no gradient: its Hessian rows are zero.
  return weights.map((w) => result.grads[w.name] ?? tf.zerosLike(w));
}

function normalise(tf: TfEigenvalueModule, xs: readonly tfjs.Tensor[], stability: number): tfjs.Tensor[] {
  // DeepSpeed: x / (‖x‖ + stability), NaN and infinities then zeroed.
  const norm = tf.add(tf.sqrt(innerProduct(tf, xs, xs)), stability);
  return xs.map((x) => zeroNonFinite(tf, tf.div(x, norm)));
}

function innerProduct(tf: TfEigenvalueModule, xs: readonly tfjs.Tensor[], ys: readonly tfjs.Tensor[]): tfjs.Scalar {
  return tf.addN(xs.map((x, i) => tf.sum(tf.mul(x, ys[i]!)))) as tfjs.Scalar;
}

function zeroNonFinite(tf: TfEigenvalueModule, x: tfjs.Tensor): tfjs.Tensor {
  return tf.where(tf.isFinite(x), x, tf.zerosLike(x));
}

function sameShape(a: readonly number[] | undefined, b: readonly number[]): boolean {
  return Array.isArray(a) && a.length === b.length && a.every((d, i) => d === b[i]);
}

function checkLoss(loss: unknown): void {
  if (typeof loss !== 'function') {
    throw new InvalidInputError('INVALID_ARGUMENT', `loss must be a function returning the scalar loss on a fixed batch, got ${loss === null ? 'null' : typeof loss}.`);
  }
}

function checkSeed(seed: unknown): void {
  if (typeof seed !== 'number' || !Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new InvalidInputError('INVALID_ARGUMENT', `seed must be an integer from 0 to 2^32-1, got ${describeValue(seed)}.`);
  }
}

function checkWeights(weights: unknown, label: string): asserts weights is readonly tfjs.Variable[] {
  if (!Array.isArray(weights) || weights.length === 0) {
    throw new InvalidInputError('INVALID_ARGUMENT', `${label} must be a non-empty list of tf.Variable.`);
  }
  weights.forEach((w: tfjs.Variable, i) => {
    if (typeof w !== 'object' || w === null || typeof w.assign !== 'function' || typeof w.name !== 'string') {
      throw new InvalidInputError('INVALID_ARGUMENT', `${label}[${i}] must be a tf.Variable (layer weights: use layer.trainableWeights[j].read()).`);
    }
    if (w.dtype !== 'float32') {
      throw new InvalidInputError('WRONG_DTYPE', `${label}[${i}] ("${w.name}") is ${w.dtype}; eigenvalues need float32 weights.`);
    }
    if (!w.trainable) {
      throw new InvalidInputError('INVALID_ARGUMENT', `${label}[${i}] ("${w.name}") is not trainable; tfjs computes no gradient for it.`);
    }
  });
}

function checkBlock(block: EigenvalueBlock, label: string): readonly string[] {
  if (typeof block !== 'object' || block === null) {
    throw new InvalidInputError('INVALID_ARGUMENT', `${label} must be { id, weights, parameterNames? }.`);
  }
  if (!Number.isInteger(block.id)) {
    throw new InvalidInputError('INVALID_ARGUMENT', `${label}.id must be an integer (the block index), got ${describeValue(block.id)}.`);
  }
  checkWeights(block.weights, `${label}.weights`);
  const names = block.parameterNames ?? block.weights.map((w) => w.name);
  if (!Array.isArray(names) || names.length !== block.weights.length || names.some((n) => typeof n !== 'string')) {
    throw new InvalidInputError('INVALID_ARGUMENT', `${label}.parameterNames must hold one string per weight (${block.weights.length}).`);
  }
  return names;
}
