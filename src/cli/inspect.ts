// `edge-moq inspect <file>`: the tensors of a safetensors file or the weights of a tfjs model,
// and how each packed one was packed.

import { InvalidInputError } from '../errors.js';
import { fileSource } from '../formats/node-file.js';
import { isPackedFile, readPackedLayout } from '../formats/packed-metadata.js';
import { openSafetensors, type SafetensorsFile } from '../formats/safetensors.js';
import { dirname, join } from 'node:path';
import { checkWeightsFile } from '../formats/tfjs/artifacts.js';
import { isPackedTfjsModel, originalSpec, weightSpecs } from '../formats/tfjs/model-json.js';
import { readTfjsModelFile } from '../formats/tfjs/node-file.js';
import { dtypeLabel } from '../formats/tfjs/weights-view.js';
import type { PackedEntry } from '../formats/packed-metadata.js';
import type { ParsedArgs } from './args.js';
import { detectFormat } from '../formats/detect-format.js';
import { naming } from './file-errors.js';
import { formatBytes } from '../describe.js';
import { table } from './table.js';
import { escapeForTerminal } from './terminal.js';

/** Metadata keys and values are shown up to this many characters (code points). */
const METADATA_SHOWN = 60;

export async function inspectCommand(args: ParsedArgs): Promise<number> {
  const [input] = args.positionals;
  if (!input || args.positionals.length > 1) throw new InvalidInputError('INVALID_ARGUMENT', 'usage: edge-moq inspect <file.safetensors | model.json>');
  const source = await fileSource(input);
  try {
    if ((await detectFormat(source)) === 'tfjs') return await inspectTfjs(input);
    let file: SafetensorsFile;
    let packed: ReturnType<typeof readPackedLayout> | null;
    try {
      file = await openSafetensors(source);
      packed = isPackedFile(file) ? readPackedLayout(file) : null;
    } catch (error) {
      throw naming(error, input);
    }
    console.log(
      `${escapeForTerminal(input)}: ${formatBytes(source.size)}, ${file.tensors.length} tensor(s)` + `${packed ? `, ${file.metadata.format} with ${packed.packed.length} packed tensor(s)` : ''}`,
    );
    const metadata = Object.entries(file.metadata).filter(([key]) => key !== 'edge-moq');
    if (metadata.length) console.log(`metadata: ${metadata.map(([key, value]) => `${shorten(key)}=${shorten(value)}`).join(', ')}`);
    const rows: string[][] = [];
    for (const p of packed?.packed ?? []) {
      const bytes = p.codes.byteLength + p.scales.byteLength + (p.zeros?.byteLength ?? 0);
      const original = p.length * (p.entry.dtype === 'F32' ? 4 : 2);
      rows.push([
        p.name,
        `[${p.entry.shape.join(', ')}]`,
        `${p.entry.dtype} -> ${p.entry.type} ${p.entry.bits}-bit, groups of ${p.entry.groupSize}${p.entry.axis === undefined ? '' : ` along axis ${p.entry.axis}`}${p.entry.grid === 'full' ? ', full grid' : ''}`,
        formatBytes(bytes),
        `${(original / bytes).toFixed(2)}x`,
      ]);
    }
    for (const t of packed?.plain ?? file.tensors) {
      rows.push([t.name, `[${t.shape.join(', ')}]`, t.dtype, formatBytes(t.byteLength), '']);
    }
    console.log(table(['tensor', 'shape', 'dtype / packing', 'bytes', 'ratio'], rows));
  } finally {
    await source.close();
  }
  return 0;
}

/** A tfjs model: its weights as the manifest lists them, and how each packed one was packed. */
async function inspectTfjs(input: string): Promise<number> {
  const { model, source } = await readTfjsModelFile(input).catch((error: unknown) => {
    throw naming(error, input);
  });
  await source.close();
  const packed = isPackedTfjsModel(model);
  let records = new Map<string, PackedEntry>();
  if (packed) {
    const path = model.weightsManifest[0]!.paths[0]!;
    const weights = await fileSource(join(dirname(input), path));
    try {
      const file = await openSafetensors(weights);
      await checkWeightsFile(file, weightSpecs(model).map(originalSpec), path);
      records = new Map(readPackedLayout(file).packed.map((p) => [p.name, p.entry]));
    } catch (error) {
      throw naming(error, input);
    } finally {
      await weights.close();
    }
  }
  const specs = weightSpecs(model).map(originalSpec);
  const files = model.weightsManifest.flatMap((g) => g.paths);
  console.log(
    `${escapeForTerminal(input)}: TensorFlow.js ${escapeForTerminal(String(model.format ?? 'model'))}, ${specs.length} weight(s) in ${files.length} file(s)` +
      `${packed ? `, packed by edge-moq (${records.size} packed)` : ''}`,
  );
  const rows = specs.map((spec) => {
    const r = records.get(spec.name);
    return [
      spec.name,
      `[${spec.shape.join(', ')}]`,
      dtypeLabel(spec),
      r ? `${r.type} ${r.bits}-bit, groups of ${r.groupSize}${r.axis === undefined ? '' : ` along axis ${r.axis}`}${r.grid === 'full' ? ', full grid' : ''}` : '',
    ];
  });
  console.log(table(['weight', 'shape', 'dtype', 'packed as'], rows));
  return 0;
}

/** A metadata key or value as printed: cut on a character boundary, then escaped. */
function shorten(text: string): string {
  const chars = Array.from(text);
  return escapeForTerminal(chars.length > METADATA_SHOWN ? `${chars.slice(0, METADATA_SHOWN - 3).join('')}...` : text);
}
