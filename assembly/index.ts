// The kernels the host calls. Every kernel works in place on float32 data in this module's
// memory; the host owns allocation and growth (see src/backends/wasm-memory.ts).

export { firstNonFinite, groupStats } from './stats';
export { quantizeGrid } from './grid';
export { quantizeTernary } from './ternary';
export { quantizeBinary } from './binary';
export { fillStochasticOffsets } from './rounding';

/** First byte the host may use: everything below holds the module's static data. */
export function heapBase(): usize {
  return __heap_base;
}
