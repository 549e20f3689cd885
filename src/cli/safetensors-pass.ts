// The frame the quantize and dequantize commands run a file in: the input opened and its format
// detected, then for safetensors the output checked (never the input itself), the packer
// --backend names, an atomically written output, and errors that name the input file.

import { detectFormat, type FileFormat } from '../formats/detect-format.js';
import { atomicFileSink, checkOutputFile, fileSource, type FileSource, type PositionalByteSink } from '../formats/node-file.js';
import type { Packer } from '../packed/packer.js';
import type { ParsedArgs } from './args.js';
import { naming } from './file-errors.js';
import { openPacker } from './packer.js';

/** Opens `input` and detects its format; closes it again when that fails. */
export async function openDetected(input: string): Promise<{ source: FileSource; format: FileFormat }> {
  const source = await fileSource(input);
  try {
    return { source, format: await detectFormat(source) };
  } catch (error) {
    await source.close();
    throw error;
  }
}

/** Runs `pass` from `source` (the file `input`, closed afterwards) into `output`; returns its result and the backend it ran on. */
export async function safetensorsPass<R>(
  args: ParsedArgs,
  source: FileSource,
  input: string,
  output: string,
  pass: (source: FileSource, sink: PositionalByteSink, packer: Packer) => Promise<R>,
): Promise<{ result: R; kind: string }> {
  try {
    await checkOutputFile(output, { distinctFrom: [source] });
    const packer = await openPacker(args);
    try {
      return { result: await pass(source, atomicFileSink(output, { distinctFrom: [source] }), packer), kind: packer.kind };
    } finally {
      packer.dispose();
    }
  } catch (error) {
    throw naming(error, input);
  } finally {
    await source.close();
  }
}
