// `edge-moq/node`: what only Node has. Files for the streaming safetensors functions of
// `edge-moq/packed` (one file's tensors on worker threads too), ONNX and TensorFlow.js models
// between files, and WebGPU through the `webgpu` package (Dawn).

export {
  atomicFileSink,
  checkOutputFile,
  FILE_CHUNK_BYTES,
  fileSource,
  removePartialOutputs,
  type FileSource,
  type OutputFileOptions,
  type OutputTarget,
  type PositionalByteSink,
} from './formats/node-file.js';
export { quantizeOnnxFile, type QuantizeOnnxFileResult } from './formats/onnx/node-file.js';
export {
  dequantizeTfjsFile,
  quantizeTfjsFile,
  readTfjsModelFile,
  writePackedTfjsModel,
  type DequantizeTfjsFileResult,
  type QuantizeTfjsFileResult,
} from './formats/tfjs/node-file.js';
export { nodeGpu, type NodeGpu } from './backends/webgpu/node-gpu.js';
export {
  DEFAULT_MAX_WORKERS,
  PARALLEL_MIN_BYTES,
  quantizeSafetensorsFile,
  type FileBackend,
  type FileQuantizeOptions,
  type FileQuantizeReport,
} from './node/file-jobs.js';
export {
  mergeIndexFiles,
  quantizeShardedCheckpoint,
  removePartialShardOutputs,
  type ShardBackend,
  type ShardedQuantizeOptions,
  type ShardedQuantizeReport,
  type ShardProgress,
} from './node/shard-jobs.js';
export type { WorkerBackend } from './node/worker-threads.js';
export {
  mergeShardIndexes,
  parseShardIndex,
  partialIndexName,
  resolveShardPiece,
  shardsOfPiece,
  SHARD_INDEX_VARIABLES,
  type ShardIndex,
  type ShardPiece,
} from './formats/sharded.js';
