// edge-moq/tfjs: TensorFlow.js end to end. TensorFlow.js is an optional peer dependency: this
// entry only takes types from it, and works with the namespace the caller passes.
// - Training: attachMoq. On tfjs's WebGPU backend the masters stay on its device and are
//   quantized there (moq.path says so); every other backend reads the weights back each step.
// - Leaving training: moq.export() packs the model as it trained.
// - Loading: packedModel() is an IOHandler for tf.loadGraphModel / tf.loadLayersModel that reads
//   packed (and plain) models from URLs, files or memory.

export { attachMoq, MoqTraining } from './attach.js';
export { exportTrainedModel, type ExportContext, type ExportOptions, type ExportReport, type ExportedModel, type ExportedWeight } from './export.js';
export { packedModel, type ModelFiles, type ModelLoader, type ModelSource, type PackedModelOptions } from './handler.js';
export { packArtifacts, unpackModel, weightsFileFor, type ArtifactsLike } from '../formats/tfjs/artifacts.js';
export {
  isPackedTfjsModel,
  parseTfjsModel,
  PACKED_TFJS_FORMAT,
  type TfjsDtype,
  type TfjsModelJson,
  type TfjsQuantization,
  type TfjsWeightGroup,
  type TfjsWeightSpec,
} from '../formats/tfjs/model-json.js';
export type {
  AfterStepOptions,
  AttachMoqOptions,
  MoqPath,
  EigenvalueContext,
  EigenvalueProvider,
  MoqStepReport,
} from './attach.js';
export type { MoqWeight, TfNamespace } from './weights.js';
export {
  blocksFromLayers,
  blocksFromModel,
  computeBlockEigenvalues,
  dominantEigenvalue,
  hessianVectorProduct,
  normaliseBlockEigenvalues,
  shouldComputeEigenvalues,
} from './eigenvalues.js';
export type { BlockEigenvalueRequest, EigenvalueBlock, LayerLike, PowerIterationResult, TfEigenvalueModule } from './eigenvalues.js';
