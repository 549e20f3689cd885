// quantizeOnnx between files, for Node (the CLI, `edge-moq/node`): the model and its external
// data files are opened and both outputs checked before any work; the output's external data
// (when the input has some) goes to `<output file name>.data` beside it. Both outputs are
// written to temporary files and renamed into place only once everything has succeeded.

import { basename, dirname, join } from 'node:path';
import type { Packer } from '../../packed/packer.js';
import { atomicFileSink, checkOutputFile, fileSource, type FileSource } from '../node-file.js';
import type { ByteSink } from '../safetensors.js';
import { externalLocations, readModel } from './model.js';
import { quantizeOnnx, type QuantizeOnnxOptions, type QuantizeOnnxResult } from './quantize.js';

/** What quantizeOnnxFile did, and the external data file it wrote. */
export interface QuantizeOnnxFileResult {
  report: QuantizeOnnxResult['report'];
  /** The output's external data file, or null when the model keeps its weights inline. */
  externalData: string | null;
}

/**
 * Quantizes an ONNX model file's MatMul weights (see quantizeOnnx), writing the output model and,
 * when the input has external data, `<output file name>.data` beside it. Both are renamed into
 * place only once everything succeeded.
 * @param input - the model's path; its external data files are found beside it
 * @param output - the output model's path
 * @param packer - packs the weights (WebAssembly or WebGPU)
 * @param options - which weights, at how many bits and what block size
 * @returns the per-MatMul report, and the external data file written (or null)
 * @throws InvalidInputError or FormatError naming the input or output that is wrong, before any work
 */
export async function quantizeOnnxFile(input: string, output: string, packer: Packer, options: QuantizeOnnxOptions = {}): Promise<QuantizeOnnxFileResult> {
  const sources: FileSource[] = [];
  try {
    const model = await fileSource(input);
    sources.push(model);
    const bytes = new Uint8Array(model.size);
    await model.read(0, bytes);
    const locations = externalLocations(readModel(bytes));
    const opened = new Map<string, FileSource>();
    for (const location of locations) {
      const source = await fileSource(join(dirname(input), location));
      sources.push(source);
      opened.set(location, source);
    }
    const dataPath = locations.length > 0 ? `${output}.data` : null;
    await checkOutputFile(output, { distinctFrom: sources });
    if (dataPath) await checkOutputFile(dataPath, { distinctFrom: sources });

    // The data file is renamed into place only after the model's file is written: the close
    // quantizeOnnx makes when it succeeds does nothing, and the file is closed below.
    const data = dataPath ? atomicFileSink(dataPath, { distinctFrom: sources }) : null;
    const deferred: ByteSink | null = data && {
      write: (chunk) => data.write(chunk),
      close: async () => undefined,
      abort: () => data.abort(),
    };
    const result = await quantizeOnnx(bytes, options, {
      packer,
      // Every location the model names was opened above (externalLocations reads the same tensors).
      externalData: (location) => opened.get(location)!,
      ...(deferred && dataPath ? { externalDataOut: { location: basename(dataPath), sink: deferred } } : {}),
    });
    const sink = atomicFileSink(output, { distinctFrom: sources });
    try {
      await sink.write(result.model);
      await data?.close();
      await sink.close();
    } catch (error) {
      await Promise.all([sink.abort(), data?.abort()]);
      throw error;
    }
    return { report: result.report, externalData: dataPath };
  } finally {
    await Promise.all(sources.map((s) => s.close().catch(() => undefined)));
  }
}
