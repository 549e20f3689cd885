// `edge-moq dequantize <packed.safetensors> -o <out.safetensors> [--dtype original|F32|F16|BF16]`

import { InvalidInputError } from '../errors.js';
import { dequantizeSafetensors, type DequantizeFileOptions } from '../formats/dequantize-file.js';
import { atomicFileSink, checkOutputFile, fileSource } from '../formats/node-file.js';

import { choiceFlag, stringFlag, type ParsedArgs } from './args.js';
import { openPacker } from './packer.js';
import { naming } from './file-errors.js';
import { createProgress } from './progress.js';
import { formatBytes } from './table.js';
import { escapeForTerminal } from './terminal.js';

export async function dequantizeCommand(args: ParsedArgs): Promise<number> {
  const [input] = args.positionals;
  const output = stringFlag(args, 'output');
  if (!input || !output || args.positionals.length > 1) {
    throw new InvalidInputError('INVALID_ARGUMENT', 'usage: edge-moq dequantize <packed.safetensors> -o <out.safetensors> [--dtype original|F32|F16|BF16]');
  }
  const progress = createProgress('dequantize', { quiet: args.flags.has('quiet') });
  const options: DequantizeFileOptions = {
    onProgress: (p) => progress.update(p.index / p.count, `${p.index + 1}/${p.count} ${p.tensor}`),
  };
  const dtype = choiceFlag(args, 'dtype', ['original', 'F32', 'F16', 'BF16'] as const);
  if (dtype !== undefined) options.dtype = dtype;
  const source = await fileSource(input);
  try {
    await checkOutputFile(output, { distinctFrom: [source] });
    const packer = await openPacker(args);
    try {
      const report = await dequantizeSafetensors(source, atomicFileSink(output, { distinctFrom: [source] }), packer, options);
      progress.done();
      console.log(`${escapeForTerminal(output)}: unpacked ${report.unpacked} tensor(s), copied ${report.copied} unchanged, on ${packer.kind}; ` +
        `${formatBytes(report.bytesIn)} -> ${formatBytes(report.bytesOut)}`);
    } finally {
      packer.dispose();
    }
  } catch (error) {
    throw naming(error, input);
  } finally {
    await source.close();
  }
  return 0;
}
