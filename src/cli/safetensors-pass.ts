// The frame the quantize and dequantize commands run a safetensors file in: the output checked
// (never the input itself), the packer --backend names, an atomically written output, and
// errors that name the input file.

import { atomicFileSink, checkOutputFile, type FileSource, type PositionalByteSink } from '../formats/node-file.js';
import type { Packer } from '../packed/packer.js';
import type { ParsedArgs } from './args.js';
import { naming } from './file-errors.js';
import { openPacker } from './packer.js';

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
