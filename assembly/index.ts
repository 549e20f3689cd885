// The kernels the host calls. Every quantization is two passes over float32 data in this
// module's memory: statistics per group (which also find NaN/Inf), then the in-place write.
// The host owns allocation and growth (see src/backends/wasm/memory.ts).

export { groupRanges, groupAbsRanges, groupAbsMeans, groupStats, firstNonFiniteGroup, errorSums } from './stats';
export { quantizeGrid } from './grid';
export { quantizeTernary } from './ternary';
export { quantizeBinary } from './binary';
export { fillStochasticOffsets } from './rounding';
export { packCodes, unpackCodes } from './pack';

/** First byte the host may use: everything below holds the module's static data. */
export function heapBase(): usize {
  return __heap_base;
}
