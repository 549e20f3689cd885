// Where a tfjs weight's output channels are, so that each output channel gets its own groups
// (one scale per channel, the layout tflite and onnxruntime quantize convolutions with). tfjs
// keeps kernels channels-last: dense [in, out], conv [kh, kw, in, out], conv1d [k, in, out],
// so groups run along every dimension but the last: axis rank-2 (axis.ts). A depthwise kernel
// [kh, kw, C, multiplier] has C × multiplier output channels, so its groups run along kh, kw:
// axis rank-3. Weights that are looked up by row rather than multiplied (embeddings) and a
// MatMul weight read transposed ([out, in]) keep groups along their rows: the last axis.
// Which one a weight is comes from the topology (a graph model's ops, a layers model's weight
// names); a 4-D kernel whose last dimension is 1 and which the topology does not explain is
// taken as depthwise, since per-channel groups of a [kh, kw, C, 1] tensor must run along kh, kw.

import type { TfjsModelJson } from './model-json.js';

const DEPTHWISE_OPS = new Set(['DepthwiseConv2dNative', 'FusedDepthwiseConv2dNative']);
const MATMUL_OPS = new Set(['MatMul', '_FusedMatMul', 'BatchMatMul', 'BatchMatMulV2']);

type Usage = 'depthwise' | 'rows';

/** A function giving each weight of `model` its default group axis (quantize-file.ts `axisFor`). */
export function channelAxes(model: TfjsModelJson): (name: string, shape: readonly number[]) => number {
  const usage = graphUsage(model.modelTopology);
  return (name, shape) => {
    const rank = shape.length;
    if (rank < 2) return rank - 1;
    const use = usage.get(name) ?? layersUsage(name);
    if (use === 'rows') return rank - 1;
    if (rank === 4 && (use === 'depthwise' || shape[3] === 1)) return 1;
    return rank - 2;
  };
}

/** How a graph model's ops use its weights (by the Const node named like the weight). */
function graphUsage(topology: unknown): Map<string, Usage> {
  const usage = new Map<string, Usage>();
  const nodes = (topology as { node?: unknown } | null)?.node;
  if (!Array.isArray(nodes)) return usage;
  for (const node of nodes as { op?: unknown; input?: unknown; attr?: Record<string, { b?: unknown }> }[]) {
    if (typeof node?.op !== 'string' || !Array.isArray(node.input)) continue;
    const inputs = node.input.filter((i): i is string => typeof i === 'string').map((i) => i.replace(/:\d+$/, ''));
    if (DEPTHWISE_OPS.has(node.op) && inputs[1]) usage.set(inputs[1], 'depthwise');
    if (MATMUL_OPS.has(node.op) && inputs[1]) {
      const transposed = node.attr?.transpose_b?.b === true || node.attr?.adj_y?.b === true;
      if (transposed) usage.set(inputs[1], 'rows');
    }
    if ((node.op === 'GatherV2' || node.op === 'Gather' || node.op === 'ResourceGather') && inputs[0]) usage.set(inputs[0], 'rows');
  }
  return usage;
}

/** A layers model's weights are named "<layer>/<weight>" after the layer's own variables. */
function layersUsage(name: string): Usage | undefined {
  const weight = name.slice(name.lastIndexOf('/') + 1).replace(/_\d+$/, '');
  if (weight === 'depthwise_kernel') return 'depthwise';
  if (weight === 'embeddings') return 'rows';
  return undefined;
}
