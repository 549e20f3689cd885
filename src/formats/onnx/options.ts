// The run's file options as quantizeOnnx takes them: MatMulNBits has blocks (the group size) along
// K, rounded to nearest, so of the rest only bits, type, grid, recipe and the patterns apply. The
// CLI and the web app build ONNX options here, so both give quantizeOnnx the same ones.

import type { QuantizeFileOptions } from '../quantize-file.js';
import type { QuantizeOnnxOptions } from './quantize.js';

export function onnxOptionsFrom(options: QuantizeFileOptions): QuantizeOnnxOptions {
  return {
    bits: options.bits,
    ...(options.groupSize !== undefined ? { blockSize: options.groupSize } : {}),
    ...(options.type ? { type: options.type } : {}),
    ...(options.type === 'asymmetric' || options.grid === undefined ? {} : { grid: options.grid }),
    ...(options.include !== undefined ? { include: options.include } : {}),
    ...(options.exclude !== undefined ? { exclude: options.exclude } : {}),
    ...(options.recipe !== undefined ? { recipe: options.recipe } : {}),
  };
}
