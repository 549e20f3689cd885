// The demo's last step, the workflow a user ships: a MoQ-trained model leaves training packed
// (codes from the masters at each weight's final bits), is written as a folder a server can host,
// and is loaded back from those files through edge-moq/tfjs's IOHandler by tf.loadLayersModel.
// Its test accuracy then has to equal the one training ended with: the packed codes decode to the
// forward weights bit for bit, so any difference is a bug, not quantization.

import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type * as tfjs from '@tensorflow/tfjs';
import { InvalidInputError } from '../errors.js';
import { writePackedTfjsModel } from '../formats/tfjs/node-file.js';
import type { Packer } from '../packed/packer.js';
import type { ExportedModel } from '../tfjs/export.js';
import { packedModel } from '../tfjs/handler.js';
import type { ExportRow } from './summary.js';
import { accuracy, type TrainedMoq } from './train.js';

export interface ExportRowOptions {
  tf: typeof tfjs;
  packer: Packer;
  /** The run's target, for the row's label. */
  bits: number;
  /** Where model.json and its weights file go (created if missing). */
  folder: string;
}

/**
 * Exports the trained model packed, writes it, loads the written files back and scores them. A
 * model the export refuses (its schedule left the mixed-precision blend active: the forward
 * weights are on no grid) gets the export's reason instead.
 */
export async function exportAndReload(trained: TrainedMoq, options: ExportRowOptions): Promise<ExportRow> {
  const { model, moq } = trained;
  const { tf, packer } = options;
  let exported: ExportedModel;
  try {
    exported = await moq.export({ packer });
  } catch (error) {
    if (error instanceof InvalidInputError) return { bits: options.bits, refused: error.message };
    throw error;
  }
  const modelPath = join(options.folder, 'model.json');
  await writePackedTfjsModel(modelPath, exported);
  const loaded = await tf.loadLayersModel(packedModel(modelPath, { packer }));
  try {
    const files = [modelPath, ...exported.modelJson.weightsManifest.flatMap((group) => group.paths.map((path) => join(options.folder, path)))];
    const sizes = await Promise.all(files.map(async (file) => (await stat(file)).size));
    return {
      bits: options.bits,
      folder: options.folder,
      downloadBytes: sizes.reduce((a, b) => a + b, 0),
      floatDownloadBytes: await floatDownloadBytes(tf, model),
      trainedAccuracy: trained.accuracy,
      reloadedAccuracy: accuracy(tf, loaded, trained.test),
    };
  } finally {
    loaded.dispose();
  }
}

/**
 * What the same model takes as a stock tfjs save (model.json with its manifest, plus the float32
 * weights file): the size the packed download is compared with. It depends on the architecture,
 * not on the weights' values, so it is measured on the model as it stands.
 */
async function floatDownloadBytes(tf: typeof tfjs, model: tfjs.LayersModel): Promise<number> {
  let bytes = 0;
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const weightData = artifacts.weightData ?? [];
      const weightBytes = (Array.isArray(weightData) ? weightData : [weightData]).reduce((sum, buffer) => sum + buffer.byteLength, 0);
      // The model.json tfjs's file and browser handlers write for these artifacts.
      const modelJson = {
        modelTopology: artifacts.modelTopology,
        format: artifacts.format,
        generatedBy: artifacts.generatedBy,
        convertedBy: artifacts.convertedBy,
        weightsManifest: [{ paths: ['./model.weights.bin'], weights: artifacts.weightSpecs }],
      };
      bytes = new TextEncoder().encode(JSON.stringify(modelJson)).length + weightBytes;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  return bytes;
}
