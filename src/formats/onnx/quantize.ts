// ONNX in, ONNX out: every MatMul whose B is a 2-D constant float tensor (an initializer or a
// Constant node of its graph or of an enclosing one, in subgraphs too) becomes a com.microsoft
// MatMulNBits (its new initializers beside it, in its own graph), in
// onnxruntime's layout and with the names its own quantizer (matmul_nbits_quantizer) gives.
// So does a Gemm of such a B (transB or not, alpha 1, A not transposed), its C added after by an
// Add node, as MatMulNBits has no beta. An embedding Gather (axis 0) of a constant [V, D] float
// table becomes a com.microsoft GatherBlockQuantized (symmetric, D a whole number of blocks):
// its uint8 data [V, D·bits/8] and scales [V, D/block] are those of a MatMulNBits with K = D and
// N = V, which is what they are packed as.
// B [K, N] is regrouped as N columns of K, in blocks along K; our packed codes for that [N, K']
// tensor are, byte for byte, MatMulNBits' B (codes low bits first, symmetric zero point
// 2^(bits-1), which is the operator's default). Everything that is not rewritten is written
// back as the bytes it was read from.

import { describeName } from '../../describe.js';
import { FormatError, InvalidInputError } from '../../errors.js';
import { compileNamePattern, type NamePattern } from '../../name-pattern.js';
import type { PackOptions } from '../../packed/layout.js';
import type { Packer } from '../../packed/packer.js';
import { compileRecipe, type CompiledRecipe, type Recipe, type RecipeRule } from '../recipe.js';
import { decodeFloat32, encodeFloat32, type ByteSink } from '../safetensors.js';
import {
  AttributeField,
  AttributeType,
  DATA_LOCATION_EXTERNAL,
  DataType,
  ExternalFiles,
  FLOAT_BYTES,
  GraphField,
  attributeNumber,
  ModelField,
  NodeField,
  OpsetField,
  TensorField,
  EntryField,
  elementCount,
  readFloatTensor,
  readModel,
  readNode,
  readTensor,
  valueInfoName,
  type ExternalDataResolver,
  type NodeInfo,
  type TensorHeader,
} from './model.js';
import { MessageWriter, bytesValue, readFields, type Field } from './proto.js';

/** Which MatMul weights quantizeOnnx converts, and how. */
export interface QuantizeOnnxOptions {
  /** 4 (default) or 8: the widths onnxruntime-web's MatMulNBits runs. */
  bits?: number;
  /** Elements of K per block: a power of two, at least 16 (default 32). */
  blockSize?: number;
  /** 'symmetric' (default: no zero_points input) or 'asymmetric' (uint8 zero_points). */
  type?: 'symmetric' | 'asymmetric';
  /** The symmetric grid: 'full' is onnxruntime's own quantizer's; default the packer's. */
  grid?: 'deepspeed' | 'full';
  /** MatMulNBits' accuracy_level attribute; left out unless given. */
  accuracyLevel?: number;
  /** Only MatMuls whose B (weight) name matches are quantized. */
  include?: string | RegExp;
  /** MatMuls whose B name matches are left as they are. */
  exclude?: string | RegExp;
  /**
   * Per-weight settings as ordered rules (src/formats/recipe.ts), matched against B's name: the
   * first match decides (`keep`, or its bits, groupSize as the block size, type, grid).
   */
  recipe?: Recipe | readonly RecipeRule[];
}

/** What quantizeOnnx reads and writes besides the model: the packer and the external data. */
export interface QuantizeOnnxIo {
  packer: Packer;
  /** Opens a file of external data by its location (relative to the model). */
  externalData?: ExternalDataResolver;
  /**
   * Where the output's external data goes (required when the input has external data): tensors
   * that were external stay external, in this one file, named `location` in the model.
   */
  externalDataOut?: { location: string; sink: ByteSink };
}

/** One weight quantizeOnnx looked at: converted, or why not. */
export interface OnnxMatMulReport {
  /** The MatMul (or Gemm) node's name (empty when it had none) and its B. */
  node: string;
  op: 'MatMul' | 'Gemm' | 'Gather';
  weight: string;
  /** B's shape, [K, N]; a Gather's table's, [V, D]. */
  shape: [number, number];
  dtype: 'FLOAT' | 'FLOAT16';
  bits: number;
  blockSize: number;
  type: 'symmetric' | 'asymmetric';
  /** B's bytes, and those of the quantized B, scales and zero points. */
  bytesIn: number;
  bytesOut: number;
  /** Largest |B − dequantized B| and the root-mean-square error, over B's K·N values. */
  maxAbsError: number;
  rmsError: number;
  /** The recipe rule that decided it (its index). */
  rule?: number;
}

/** The converted model's bytes, and a report per weight. */
export interface QuantizeOnnxResult {
  model: Uint8Array;
  report: { matmuls: OnnxMatMulReport[]; bytesIn: number; bytesOut: number };
}

interface Settings {
  bits: number;
  blockSize: number;
  type: 'symmetric' | 'asymmetric';
  grid: 'deepspeed' | 'full' | undefined;
  accuracyLevel: number | undefined;
  include: NamePattern | null;
  exclude: NamePattern | null;
  recipe: CompiledRecipe | null;
}

const OPTION_KEYS = new Set(['bits', 'blockSize', 'type', 'grid', 'accuracyLevel', 'include', 'exclude', 'recipe']);

function readSettings(options: QuantizeOnnxOptions): Settings {
  if (typeof options !== 'object' || options === null) throw new InvalidInputError('INVALID_ARGUMENT', 'quantizeOnnx options must be an object.');
  const unknown = Object.keys(options).filter((key) => !OPTION_KEYS.has(key));
  if (unknown.length > 0) {
    throw new InvalidInputError('INVALID_ARGUMENT', `unknown quantizeOnnx option ${unknown.map((k) => describeName(k)).join(', ')}; known: ${[...OPTION_KEYS].join(', ')}.`);
  }
  const { bits = 4, blockSize = 32, type = 'symmetric', grid, accuracyLevel } = options;
  if (bits !== 4 && bits !== 8) {
    throw new InvalidInputError('INVALID_ARGUMENT', `bits must be 4 or 8 for MatMulNBits, got ${bits}: onnxruntime-web 1.23 runs no other width (its wasm build refuses 2-bit MatMulNBits models).`);
  }
  if (!Number.isInteger(blockSize) || blockSize < 16 || (blockSize & (blockSize - 1)) !== 0) {
    throw new InvalidInputError('INVALID_ARGUMENT', `blockSize must be a power of two of at least 16 (MatMulNBits' rule), got ${blockSize}.`);
  }
  if (type !== 'symmetric' && type !== 'asymmetric') throw new InvalidInputError('INVALID_ARGUMENT', `type must be "symmetric" or "asymmetric", got ${String(type)}.`);
  if (grid !== undefined && grid !== 'deepspeed' && grid !== 'full') throw new InvalidInputError('INVALID_ARGUMENT', `grid must be "deepspeed" or "full", got ${String(grid)}.`);
  if (accuracyLevel !== undefined && (!Number.isInteger(accuracyLevel) || accuracyLevel < 0 || accuracyLevel > 4)) {
    throw new InvalidInputError('INVALID_ARGUMENT', `accuracyLevel must be 0..4 (MatMulNBits' accuracy_level), got ${accuracyLevel}.`);
  }
  return {
    bits,
    blockSize,
    type,
    grid,
    accuracyLevel,
    include: options.include === undefined ? null : compileNamePattern(options.include, 'include'),
    exclude: options.exclude === undefined ? null : compileNamePattern(options.exclude, 'exclude'),
    recipe: options.recipe === undefined ? null : compileRecipe(options.recipe, 'recipe'),
  };
}

/**
 * The settings for weight `name`, or null where it stays as it is (include/exclude, or a recipe
 * rule that keeps it). A rule's fields replace the options'; MatMulNBits has no room for an axis
 * (blocks run along K), a group count or stochastic codes, so a rule asking for them is refused.
 */
function settingsFor(settings: Settings, name: string): { settings: Settings; rule?: number } | null {
  if (settings.include && !settings.include.test(name)) return null;
  if (settings.exclude?.test(name)) return null;
  const compiled = settings.recipe?.ruleFor(name);
  if (!compiled) return { settings };
  const { rule, index } = compiled;
  if (rule.keep) return null;
  const label = `recipe rule ${index + 1} (${describeName(rule.match)})`;
  for (const key of ['axis', 'groups', 'rounding'] as const) {
    if (rule[key] !== undefined) {
      throw new InvalidInputError('INVALID_ARGUMENT', `${label} sets ${key}, which MatMulNBits cannot hold (blocks of groupSize run along K, nearest rounding); remove it for ONNX models.`);
    }
  }
  const merged = readSettings({
    bits: rule.bits ?? settings.bits,
    blockSize: rule.groupSize ?? settings.blockSize,
    type: rule.type ?? settings.type,
    ...((rule.grid ?? settings.grid) ? { grid: (rule.grid ?? settings.grid)! } : {}),
  });
  return { settings: { ...merged, include: null, exclude: null, recipe: null }, rule: index };
}

/** MatMulNBits' inputs for one B. */
export interface MatMulNBitsWeights {
  k: number;
  n: number;
  bits: number;
  blockSize: number;
  /** uint8 [N, ceil(K/blockSize), blockSize·bits/8]. */
  b: Uint8Array;
  /** float32 [N·ceil(K/blockSize)], before conversion to the model's dtype. */
  scales: Float32Array;
  /** uint8 [N, ceil(ceil(K/blockSize)·bits/8)], asymmetric only. */
  zeroPoints: Uint8Array | null;
}

/** The code of element `i` of a little-endian bit stream of `bits`-bit codes. */
const codeAt = (codes: Uint8Array, i: number, bits: number) => (bits === 8 ? codes[i]! : (codes[i >> 1]! >> ((i & 1) * 4)) & 15);

/**
 * B [K, N] (row-major float32) dequantized from MatMulNBits weights, [K, N] again.
 * @param w - the packed B, its scales and zero points, as quantizeOnnx wrote them
 * @returns B's values, row-major [K, N]
 */
export function dequantizeMatMulNBits(w: MatMulNBitsWeights): Float32Array {
  const { k, n, bits, blockSize } = w;
  const blocks = Math.ceil(k / blockSize);
  const padded = blocks * blockSize;
  const zpRow = Math.ceil((blocks * bits) / 8);
  const out = new Float32Array(k * n);
  for (let col = 0; col < n; col++) {
    for (let block = 0; block < blocks; block++) {
      const s = w.scales[col * blocks + block]!;
      const zp = w.zeroPoints ? codeAt(w.zeroPoints, col * zpRow * (8 / bits) + block, bits) : 2 ** (bits - 1);
      for (let i = block * blockSize; i < Math.min(k, (block + 1) * blockSize); i++) {
        out[i * n + col] = Math.fround((codeAt(w.b, col * padded + i, bits) - zp) * s);
      }
    }
  }
  return out;
}

/** Packs B [K, N] for MatMulNBits: columns of K in blocks, K padded to whole blocks. */
async function packWeights(values: Float32Array, k: number, n: number, transposed: boolean, settings: Settings, packer: Packer, label: string): Promise<MatMulNBitsWeights> {
  const { bits, blockSize } = settings;
  const blocks = Math.ceil(k / blockSize);
  const padded = blocks * blockSize;
  const columns = new Float32Array(n * padded);
  for (let col = 0; col < n; col++) {
    const row = columns.subarray(col * padded, (col + 1) * padded);
    for (let i = 0; i < k; i++) row[i] = values[transposed ? col * k + i : i * n + col]!;
    // K is padded with zeros, as onnxruntime's quantizer pads it (the runtime never reads the
    // padded codes); a zero leaves a symmetric block's largest magnitude as it was.
  }
  const options = { bits, groupSize: blockSize, type: settings.type, ...(settings.grid ? { grid: settings.grid } : {}) } as PackOptions;
  const packed = await packer.pack(columns, options);
  if (settings.type === 'symmetric') return { k, n, bits, blockSize, b: packed.codes, scales: packed.scales, zeroPoints: null };
  // Ours: code·s + zero with zero = round(min/s)·s; MatMulNBits: (code − zp)·s, zp an unsigned
  // code, so the block's grid must reach 0 from within its 2^bits codes. A block that misses it
  // (wholly on one side of 0, or reaching it only at the grid's clamped top) is packed again
  // as one group of 2·blockSize, the block first: beside as many zeros (the range [0, max], what
  // onnxruntime's quantizer takes), or failing that beside its own negation (the range
  // [−absmax, absmax], zero point 2^(bits−1)). Its first blockSize codes are the block's.
  const scales = packed.scales.slice();
  const zeros = packed.zeros!.slice();
  const codes = packed.codes;
  const blobBytes = (blockSize * bits) / 8;
  const zeroPointOf = (g: number) => (scales[g] === 0 ? 1 : -Math.round(zeros[g]! / scales[g]!));
  const fits = (g: number) => zeroPointOf(g) >= 0 && zeroPointOf(g) < 2 ** bits;
  for (let g = 0; g < n * blocks; g++) {
    const block = columns.subarray(g * blockSize, (g + 1) * blockSize);
    for (const beside of [new Float32Array(blockSize), block.map((x) => -x)]) {
      if (fits(g)) break;
      const widened = new Float32Array(2 * blockSize);
      widened.set(block);
      widened.set(beside, blockSize);
      const again = await packer.pack(widened, { ...options, groupSize: 2 * blockSize });
      codes.set(again.codes.subarray(0, blobBytes), g * blobBytes);
      scales[g] = again.scales[0]!;
      zeros[g] = again.zeros![0]!;
    }
  }
  const zpRow = Math.ceil((blocks * bits) / 8);
  const zeroPoints = new Uint8Array(n * zpRow);
  for (let col = 0; col < n; col++) {
    for (let block = 0; block < blocks; block++) {
      const g = col * blocks + block;
      const zp = zeroPointOf(g);
      if (zp < 0 || zp >= 2 ** bits) {
        // A guard, not a path: the retry above gives every block a range of [-a, a] and zero
        // point 2^(bits-1), at half scale and for subnormals too (6000 extreme random blocks
        // searched found none that reach it); a wrong zero point must never be written.
        throw new InvalidInputError(
          'INVALID_ARGUMENT',
          `${label}: block ${block} of column ${col} needs zero point ${zp}, outside MatMulNBits' ` + `0..${2 ** bits - 1}; quantize it symmetric (type 'symmetric'), or exclude it.`,
        );
      }
      // A constant group stores its value as the zero point with codes 0: (0 − 1)·(−c) = c.
      if (scales[g] === 0) scales[g] = -zeros[g]!;
      const at = col * zpRow * (8 / bits) + block;
      if (bits === 8) zeroPoints[at] = zp;
      else zeroPoints[at >> 1]! |= zp << ((at & 1) * 4);
    }
  }
  return { k, n, bits, blockSize, b: codes, scales, zeroPoints };
}

/** A MatMul to rewrite: its B, where it comes from. */
/** A name's constant tensor as seen from a graph (null: defined, but not a constant; or unknown). */
type Resolve = (name: string) => TensorHeader | null;

interface Candidate {
  weight: string;
  tensor: TensorHeader;
  /** B stored [N, K] (a Gemm's transB). */
  transposed: boolean;
  /** A Gemm's C, added after. */
  bias: string | null;
  /** An embedding table (a Gather's data, [V, D]) rather than a MatMul's B. */
  gather: boolean;
  /** How this weight is quantized (the options, or a recipe rule's). */
  settings: Settings;
  /** The recipe rule that decided it. */
  rule?: number;
}

interface Quantized {
  /** The B it was made from. */
  source: string;
  gather: boolean;
  weights: MatMulNBitsWeights;
  names: { b: string; scales: string; zeroPoints: string };
  dtype: number;
  external: boolean;
}

const attributeInt = (name: string, value: number) => new MessageWriter().string(AttributeField.NAME, name).int(AttributeField.I, value).int(AttributeField.TYPE, AttributeType.INT);

class Rewriter {
  readonly reports: OnnxMatMulReport[] = [];
  private readonly files: ExternalFiles;
  private externalOffset = 0;
  private readonly claimed = new Set<string>();
  /** The names of every B quantized so far, in any graph. */
  private readonly quantizedSources = new Set<string>();

  constructor(
    private readonly settings: Settings,
    private readonly io: QuantizeOnnxIo,
  ) {
    this.files = new ExternalFiles(io.externalData);
  }

  /**
   * The rewritten graph, and every name its nodes (and their subgraphs) read. `outer` resolves
   * names from the enclosing graphs: a subgraph's MatMul may take its B from an outer initializer.
   */
  async graph(bytes: Uint8Array, path: string, outer: Resolve | null = null): Promise<{ graph: MessageWriter; reads: Set<string>; changed: boolean }> {
    const fields = readFields(bytes, `graph ${path}`);
    const initializers = new Map<string, TensorHeader>();
    const graphInputs = new Set<string>();
    const graphOutputs = new Set<string>();
    const nodes: NodeInfo[] = [];
    for (const f of fields) {
      if (f.number === GraphField.NODE) nodes.push(readNode(f, `a node of graph ${path}`));
      else if (f.number === GraphField.INITIALIZER) {
        const t = readTensor(bytesValue(f, 'initializer'), `an initializer of graph ${path}`);
        initializers.set(t.name, t);
      } else if (f.number === GraphField.INPUT) graphInputs.add(valueInfoName(f, 'graph input'));
      else if (f.number === GraphField.OUTPUT) graphOutputs.add(valueInfoName(f, 'graph output'));
    }
    for (const name of initializers.keys()) this.claimed.add(name);
    for (const node of nodes) for (const o of node.outputs) this.claimed.add(o);

    // Constant nodes' tensors, by output name.
    const constants = new Map<string, { node: NodeInfo; tensor: TensorHeader }>();
    for (const node of nodes) {
      if (node.opType !== 'Constant' || (node.domain !== '' && node.domain !== 'ai.onnx') || node.outputs.length !== 1) continue;
      const value = node.attributes.find((a) => a.name === 'value' && a.type === AttributeType.TENSOR);
      const t = value?.fields.find((f) => f.number === AttributeField.T);
      if (t) constants.set(node.outputs[0]!, { node, tensor: readTensor(bytesValue(t, 'Constant value'), `Constant ${describeName(node.outputs[0]!)}`) });
    }
    // ONNX scoping: a name defined here (an input, an initializer, a node's output) hides the
    // enclosing graphs'. An initializer that is also a graph input can be overridden at run
    // time, and a node's output is computed: neither is a constant.
    const nodeOutputs = new Set(nodes.flatMap((node) => node.outputs));
    const resolve: Resolve = (name) => {
      if (graphInputs.has(name)) return null;
      const tensor = initializers.get(name) ?? constants.get(name)?.tensor;
      if (tensor) return tensor;
      return nodeOutputs.has(name) ? null : (outer?.(name) ?? null);
    };
    const candidate = (node: NodeInfo): Candidate | null => {
      if (node.domain !== '' && node.domain !== 'ai.onnx') return null;
      let transposed = false;
      let bias: string | null = null;
      if (node.opType === 'Gemm') {
        const [alpha = 1, beta = 1, transA = 0, transB = 0] = ['alpha', 'beta', 'transA', 'transB'].map((a) => attributeNumber(node, a));
        bias = node.inputs[2] || null;
        if (alpha !== 1 || transA !== 0 || (bias !== null && beta !== 1)) return null;
        transposed = transB !== 0;
      } else if (node.opType !== 'MatMul' || node.inputs.length !== 2) {
        return null;
      }
      const weight = node.inputs[1]!;
      const tensor = resolve(weight);
      if (tensor?.dims.length !== 2 || FLOAT_BYTES[tensor.dataType] === undefined || elementCount(tensor.dims) === 0) return null;
      const chosen = settingsFor(this.settings, weight);
      if (!chosen) return null;
      return { weight, tensor, transposed, bias, gather: false, ...chosen };
    };
    const gatherCandidate = (node: NodeInfo): Candidate | null => {
      if (node.opType !== 'Gather' || (node.domain !== '' && node.domain !== 'ai.onnx') || node.inputs.length !== 2) return null;
      if ((attributeNumber(node, 'axis') ?? 0) !== 0) return null;
      const weight = node.inputs[0]!;
      const tensor = resolve(weight);
      if (tensor?.dims.length !== 2 || FLOAT_BYTES[tensor.dataType] === undefined || elementCount(tensor.dims) === 0) return null;
      const chosen = settingsFor(this.settings, weight);
      if (chosen?.settings.type !== 'symmetric' || tensor.dims[1]! % chosen.settings.blockSize !== 0) return null;
      return { weight, tensor, transposed: true, bias: null, gather: true, ...chosen };
    };

    const quantized = new Map<string, Quantized>();
    const rewritten: { node: NodeInfo; bytes: MessageWriter | null; reads: string[] }[] = [];
    let changed = false;
    for (const node of nodes) {
      const c = candidate(node) ?? gatherCandidate(node);
      if (c?.gather) {
        const key = `G${c.weight}`;
        let q = quantized.get(key);
        if (!q) {
          q = await this.quantize(c, node);
          quantized.set(key, q);
        }
        rewritten.push({ node, bytes: this.gatherBlockQuantized(node, q), reads: [q.names.b, node.inputs[1]!, q.names.scales] });
        changed = true;
        continue;
      }
      if (c) {
        const key = `${c.transposed ? 'T' : 'N'}${c.weight}`;
        let q = quantized.get(key);
        if (!q) {
          q = await this.quantize(c, node);
          quantized.set(key, q);
        }
        const reads = [node.inputs[0]!, q.names.b, q.names.scales, q.names.zeroPoints];
        if (c.bias === null) {
          rewritten.push({ node, bytes: this.matMulNBits(node, q, node.outputs[0]!), reads });
        } else {
          const product = this.fresh(`${node.outputs[0]!}_MatMulNBits`);
          rewritten.push({ node, bytes: this.matMulNBits(node, q, product), reads });
          const add = new MessageWriter().string(NodeField.INPUT, product).string(NodeField.INPUT, c.bias).string(NodeField.OUTPUT, node.outputs[0]!);
          if (node.name) add.string(NodeField.NAME, `${node.name}_bias`);
          rewritten.push({ node, bytes: add.string(NodeField.OP_TYPE, 'Add'), reads: [product, c.bias] });
        }
        changed = true;
        continue;
      }
      const sub = await this.subgraphs(node, path, resolve);
      if (sub.changed) changed = true;
      rewritten.push({ node, bytes: sub.changed ? sub.node : null, reads: [...node.inputs, ...sub.reads] });
    }
    const reads = new Set<string>([...graphOutputs]);
    for (const r of rewritten) for (const name of r.reads) reads.add(name);
    for (const q of quantized.values()) this.quantizedSources.add(q.source);
    // B tensors no reader is left for go, initializers and Constant nodes alike, wherever they
    // were quantized: here, or in a subgraph that read them from this graph.
    const dropped = new Set([...this.quantizedSources].filter((name) => !reads.has(name)));

    const out = new MessageWriter();
    let nodesWritten = false;
    let lastInitializer = -1;
    fields.forEach((f, i) => {
      if (f.number === GraphField.INITIALIZER) lastInitializer = i;
    });
    const newInitializers = async () => {
      for (const q of quantized.values()) await this.writeQuantized(out, q);
    };
    for (let i = 0; i < fields.length; i++) {
      const f = fields[i]!;
      if (f.number === GraphField.NODE) {
        if (nodesWritten) continue;
        nodesWritten = true;
        for (const r of rewritten) {
          if (constants.get(r.node.outputs[0]!)?.node === r.node && dropped.has(r.node.outputs[0]!)) continue;
          if (r.bytes) out.message(GraphField.NODE, r.bytes);
          else out.raw(r.node.field.raw);
        }
      } else if (f.number === GraphField.INITIALIZER) {
        const t = readTensor(bytesValue(f, 'initializer'), `an initializer of graph ${path}`);
        if (!dropped.has(t.name)) await this.writeTensor(out, GraphField.INITIALIZER, f, t);
        if (i === lastInitializer) await newInitializers();
      } else {
        out.raw(f.raw);
      }
    }
    if (lastInitializer < 0) await newInitializers();
    return { graph: out, reads, changed };
  }

  /** A node whose graph attributes are rewritten (If, Loop, Scan bodies). */
  private async subgraphs(node: NodeInfo, path: string, resolve: Resolve): Promise<{ node: MessageWriter; reads: string[]; changed: boolean }> {
    const reads: string[] = [];
    let changed = false;
    const attributes = new Map<Field, MessageWriter>();
    for (const a of node.attributes) {
      if (a.type !== AttributeType.GRAPH && a.type !== AttributeType.GRAPHS) continue;
      const out = new MessageWriter();
      let attributeChanged = false;
      for (const f of a.fields) {
        if (f.number === AttributeField.G || f.number === AttributeField.GRAPHS) {
          const sub = await this.graph(bytesValue(f, 'a subgraph'), `${path}/${node.name || node.opType}.${a.name}`, resolve);
          reads.push(...sub.reads);
          if (sub.changed) attributeChanged = true;
          out.message(f.number, sub.graph);
        } else {
          out.raw(f.raw);
        }
      }
      if (attributeChanged) {
        attributes.set(a.field, out);
        changed = true;
      }
    }
    const rewritten = new MessageWriter();
    if (changed) {
      for (const f of node.fields) {
        const attribute = attributes.get(f);
        if (attribute) rewritten.message(NodeField.ATTRIBUTE, attribute);
        else rewritten.raw(f.raw);
      }
    }
    return { node: rewritten, reads, changed };
  }

  /** A name for a new initializer: onnxruntime's, unless the model already uses it. */
  private fresh(name: string): string {
    let candidate = name;
    for (let i = 1; this.claimed.has(candidate); i++) candidate = `${name}_${i}`;
    this.claimed.add(candidate);
    return candidate;
  }

  private async quantize(c: Candidate, node: NodeInfo): Promise<Quantized> {
    const { bits, blockSize, type } = c.settings;
    const [k, n] = (c.transposed ? [...c.tensor.dims].reverse() : c.tensor.dims) as [number, number];
    const values = await readFloatTensor(c.tensor, this.files);
    const label = `${node.opType} ${describeName(node.name || node.outputs[0] || '')} (B ${describeName(c.weight)}, [${k}, ${n}])`;
    for (let i = 0; i < values.length; i++) {
      if (!Number.isFinite(values[i]!)) throw new InvalidInputError('NON_FINITE', `${label}: B holds ${values[i]} at element ${i}; fix the model's weights or exclude it.`);
    }
    const weights = await packWeights(values, k, n, c.transposed, c.settings, this.io.packer, label);
    const dtype = c.tensor.dataType;
    // FLOAT16 scales: the error is that of the scales the model will hold.
    if (dtype === DataType.FLOAT16) weights.scales = decodeFloat32(encodeFloat32(weights.scales, 'F16'), 'F16');
    const restored = dequantizeMatMulNBits(weights);
    let max = 0;
    let sum = 0;
    for (let i = 0; i < values.length; i++) {
      // restored is [K, N]; values [N, K] when transposed.
      const e = Math.abs(values[i]! - restored[c.transposed ? (i % k) * n + Math.floor(i / k) : i]!);
      max = Math.max(max, e);
      sum += e * e;
    }
    const suffix = `_Q${bits}`;
    const names = { b: this.fresh(`${c.weight}${suffix}`), scales: this.fresh(`${c.weight}_scales`), zeroPoints: type === 'asymmetric' ? this.fresh(`${c.weight}_zero_points`) : '' };
    const scaleBytes = FLOAT_BYTES[dtype]!;
    this.reports.push({
      node: node.name,
      op: node.opType as OnnxMatMulReport['op'],
      weight: c.weight,
      shape: c.gather ? [n, k] : [k, n],
      dtype: dtype === DataType.FLOAT ? 'FLOAT' : 'FLOAT16',
      bits,
      blockSize,
      type,
      bytesIn: values.length * scaleBytes,
      bytesOut: weights.b.length + weights.scales.length * scaleBytes + (weights.zeroPoints?.length ?? 0),
      maxAbsError: max,
      rmsError: Math.sqrt(sum / values.length),
      ...(c.rule === undefined ? {} : { rule: c.rule }),
    });
    return { source: c.weight, gather: c.gather, weights, names, dtype, external: c.tensor.external !== null };
  }

  private matMulNBits(node: NodeInfo, q: Quantized, output: string): MessageWriter {
    const { k, n, bits, blockSize } = q.weights;
    const out = new MessageWriter().string(NodeField.INPUT, node.inputs[0]!).string(NodeField.INPUT, q.names.b).string(NodeField.INPUT, q.names.scales);
    if (q.weights.zeroPoints) out.string(NodeField.INPUT, q.names.zeroPoints);
    out.string(NodeField.OUTPUT, output);
    if (node.name) out.string(NodeField.NAME, `${node.name}_Q${bits}`);
    out.string(NodeField.OP_TYPE, 'MatMulNBits');
    out
      .message(NodeField.ATTRIBUTE, attributeInt('K', k))
      .message(NodeField.ATTRIBUTE, attributeInt('N', n))
      .message(NodeField.ATTRIBUTE, attributeInt('bits', bits))
      .message(NodeField.ATTRIBUTE, attributeInt('block_size', blockSize));
    if (this.settings.accuracyLevel !== undefined) out.message(NodeField.ATTRIBUTE, attributeInt('accuracy_level', this.settings.accuracyLevel));
    out.string(NodeField.DOMAIN, 'com.microsoft');
    return out;
  }

  private gatherBlockQuantized(node: NodeInfo, q: Quantized): MessageWriter {
    const { bits, blockSize } = q.weights;
    const out = new MessageWriter().string(NodeField.INPUT, q.names.b).string(NodeField.INPUT, node.inputs[1]!).string(NodeField.INPUT, q.names.scales);
    for (const o of node.outputs) out.string(NodeField.OUTPUT, o);
    if (node.name) out.string(NodeField.NAME, `${node.name}_Q${bits}`);
    out.string(NodeField.OP_TYPE, 'GatherBlockQuantized');
    out
      .message(NodeField.ATTRIBUTE, attributeInt('gather_axis', 0))
      .message(NodeField.ATTRIBUTE, attributeInt('quantize_axis', 1))
      .message(NodeField.ATTRIBUTE, attributeInt('block_size', blockSize))
      .message(NodeField.ATTRIBUTE, attributeInt('bits', bits));
    return out.string(NodeField.DOMAIN, 'com.microsoft');
  }

  private async writeQuantized(out: MessageWriter, q: Quantized): Promise<void> {
    const { k, n, bits, blockSize } = q.weights;
    const blocks = Math.ceil(k / blockSize);
    const scales = q.dtype === DataType.FLOAT ? encodeFloat32(q.weights.scales, 'F32') : encodeFloat32(q.weights.scales, 'F16');
    // The same bytes either way: [N, blocks, blob] for MatMulNBits, [V, D·bits/8] for a table.
    await this.writeNew(out, q.names.b, DataType.UINT8, q.gather ? [n, (k * bits) / 8] : [n, blocks, (blockSize * bits) / 8], q.weights.b, q.external);
    await this.writeNew(out, q.names.scales, q.dtype, q.gather ? [n, blocks] : [n * blocks], scales, false);
    if (q.weights.zeroPoints) await this.writeNew(out, q.names.zeroPoints, DataType.UINT8, [q.weights.zeroPoints.length], q.weights.zeroPoints, false);
  }

  private async writeNew(out: MessageWriter, name: string, dataType: number, dims: number[], data: Uint8Array, external: boolean): Promise<void> {
    const t = new MessageWriter().ints(TensorField.DIMS, dims).int(TensorField.DATA_TYPE, dataType).string(TensorField.NAME, name);
    if (external) await this.external(t, data.length, async (sink) => sink.write(data));
    else t.bytes(TensorField.RAW_DATA, data);
    out.message(GraphField.INITIALIZER, t);
  }

  /** Appends external-data fields to `t`, after writing its `length` bytes to the output's data file. */
  private async external(t: MessageWriter, length: number, write: (sink: ByteSink) => Promise<void>): Promise<void> {
    const target = this.io.externalDataOut;
    if (!target) {
      throw new InvalidInputError(
        'INVALID_ARGUMENT',
        'the model keeps weights in external data, and so will the output: pass externalDataOut ' + "({ location, sink }: the data file's name beside the output model, and a sink that writes it).",
      );
    }
    const entry = (key: string, value: string) => new MessageWriter().string(EntryField.KEY, key).string(EntryField.VALUE, value);
    const offset = this.externalOffset;
    await write(target.sink);
    this.externalOffset += length;
    t.int(TensorField.DATA_LOCATION, DATA_LOCATION_EXTERNAL)
      .message(TensorField.EXTERNAL_DATA, entry('location', target.location))
      .message(TensorField.EXTERNAL_DATA, entry('offset', String(offset)))
      .message(TensorField.EXTERNAL_DATA, entry('length', String(length)));
  }

  /** A kept tensor: as read, or with its external data copied to the output's data file. */
  private async writeTensor(out: MessageWriter, number: number, field: Field, t: TensorHeader): Promise<void> {
    if (!t.external) {
      out.raw(field.raw);
      return;
    }
    const bytes = FLOAT_BYTES[t.dataType] ?? ELEMENT_BYTES[t.dataType];
    if (bytes === undefined) throw new FormatError(`tensor ${describeName(t.name)} keeps data type ${t.dataType} in external data, which this tool does not copy.`);
    const { source, offset, length } = await this.files.span(t, bytes);
    const kept = new MessageWriter();
    for (const f of t.fields) {
      if (f.number !== TensorField.EXTERNAL_DATA && f.number !== TensorField.DATA_LOCATION) kept.raw(f.raw);
    }
    await this.external(kept, length, async (sink) => {
      const chunk = 1 << 24;
      for (let at = 0; at < length; at += chunk) {
        const part = new Uint8Array(Math.min(chunk, length - at));
        await source.read(offset + at, part);
        await sink.write(part);
      }
    });
    out.message(number, kept);
  }
}

/** Bytes per element of the fixed-size types an external tensor may hold. */
const ELEMENT_BYTES: Readonly<Record<number, number>> = { 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 11: 8, 12: 4, 13: 8, 14: 8, 15: 16, 16: 2 };

/**
 * Quantizes an ONNX model's MatMul weights to com.microsoft MatMulNBits. Nothing is written to
 * `externalDataOut` unless the whole model converts (it is aborted on error).
 * @param model - the ModelProto's bytes
 * @param options - which weights, at how many bits and what block size
 * @param io - the packer, and where external data comes from and goes to
 * @returns the new model's bytes and a report per MatMul
 * @throws FormatError for a model that does not decode; InvalidInputError for bad options
 */
export async function quantizeOnnx(model: Uint8Array, options: QuantizeOnnxOptions, io: QuantizeOnnxIo): Promise<QuantizeOnnxResult> {
  const settings = readSettings(options);
  if (!io || typeof io.packer?.pack !== 'function') throw new InvalidInputError('INVALID_ARGUMENT', 'quantizeOnnx needs { packer } (from createPacker).');
  const header = readModel(model);
  const rewriter = new Rewriter(settings, io);
  try {
    const { graph } = await rewriter.graph(bytesValue(header.graph, 'graph'), 'main');
    const out = new MessageWriter();
    let opsetWritten = false;
    for (const f of header.fields) {
      if (f.number === ModelField.GRAPH) out.message(ModelField.GRAPH, graph);
      else out.raw(f.raw);
      if (f.number === ModelField.OPSET_IMPORT && !opsetWritten && rewriter.reports.length > 0 && !header.opsets.has('com.microsoft')) {
        opsetWritten = true;
        out.message(ModelField.OPSET_IMPORT, new MessageWriter().string(OpsetField.DOMAIN, 'com.microsoft').int(OpsetField.VERSION, 1));
      }
    }
    await io.externalDataOut?.sink.close();
    const bytesIn = rewriter.reports.reduce((a, r) => a + r.bytesIn, 0);
    const bytesOut = rewriter.reports.reduce((a, r) => a + r.bytesOut, 0);
    return { model: out.finish(), report: { matmuls: rewriter.reports, bytesIn, bytesOut } };
  } catch (error) {
    await io.externalDataOut?.sink.abort();
    throw error;
  }
}
