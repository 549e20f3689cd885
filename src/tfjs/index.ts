// edge-moq/tfjs: MoQ training for TensorFlow.js layers models. TensorFlow.js is an optional peer
// dependency: this entry only takes types from it, and works with the namespace the caller passes.
//
// Each step reads the quantized weights back to the host, quantizes them there (WebAssembly, or
// our WebGPU backend for large tensors) and uploads the result, whatever tfjs backend runs the
// model (cpu, wasm, webgl, webgpu). Quantizing in place on tfjs's own GPU buffers
// (tensor.dataToGPU() into WebGpuBackend.fakeQuantizeBuffers) is not done: it needs
// @tensorflow/tfjs-backend-webgpu, which this project neither depends on nor could test.

export { attachMoq, MoqTraining } from './attach.js';
export { exportTrainedModel, type ExportContext, type ExportOptions, type ExportReport, type ExportedModel, type ExportedWeight } from './export.js';
export { packedModel, type ModelFiles, type ModelLoader, type ModelSource, type PackedModelOptions } from './handler.js';
export { packArtifacts, unpackModel, weightsFileFor, type ArtifactsLike } from '../formats/tfjs/artifacts.js';
export {
  isPackedTfjsModel, parseTfjsModel, PACKED_TFJS_FORMAT, type TfjsModelJson, type TfjsQuantization, type TfjsWeightSpec,
} from '../formats/tfjs/model-json.js';
export type {
  AfterStepOptions, AttachMoqOptions, EigenvalueContext, EigenvalueProvider, MoqStepReport,
} from './attach.js';
export type { MoqWeight, TfNamespace } from './weights.js';
export {
  blocksFromLayers, blocksFromModel, computeBlockEigenvalues, dominantEigenvalue, hessianVectorProduct, normaliseBlockEigenvalues,
  shouldComputeEigenvalues,
} from './eigenvalues.js';
export type { BlockEigenvalueRequest, EigenvalueBlock, LayerLike, PowerIterationResult } from './eigenvalues.js';
