// `edge-moq/onnx`: ONNX models in, ONNX models out, MatMul weights as com.microsoft
// MatMulNBits that onnxruntime (web, node, native) runs. Its own entry: the protobuf reader and
// the graph rewrite stay out of the main bundles.

export {
  quantizeOnnx,
  dequantizeMatMulNBits,
  type MatMulNBitsWeights,
  type OnnxMatMulReport,
  type QuantizeOnnxIo,
  type QuantizeOnnxOptions,
  type QuantizeOnnxResult,
} from './formats/onnx/quantize.js';
export type { ExternalDataResolver } from './formats/onnx/model.js';
