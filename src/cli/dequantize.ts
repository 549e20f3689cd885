// `edge-moq dequantize <packed.safetensors> -o <out.safetensors> [--dtype original|F32|F16|BF16]`, or a
// packed TensorFlow.js model.json to a stock one (told apart by content).

import { InvalidInputError } from '../errors.js';
import { dequantizeSafetensors, type DequantizeFileOptions } from '../formats/dequantize-file.js';

import { dequantizeTfjsFile } from '../formats/tfjs/node-file.js';
import type { Progress } from './progress.js';
import { choiceFlag, stringFlag, type ParsedArgs } from './args.js';
import { openPacker } from './packer.js';
import { naming } from './file-errors.js';
import { createProgress } from './progress.js';
import { formatBytes } from '../describe.js';
import { openDetected, safetensorsPass } from './safetensors-pass.js';
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
  const { source, format } = await openDetected(input).catch((error: unknown) => {
    throw naming(error, input);
  });
  if (format === 'tfjs') {
    await source.close();
    if (dtype !== undefined) throw new InvalidInputError('INVALID_ARGUMENT', '--dtype does not apply to TensorFlow.js models: their weights come back in the dtypes their manifest gives.');
    return dequantizeTfjsModel(args, input, output, progress);
  }
  const { result: report, kind } = await safetensorsPass(args, source, input, output, (from, sink, packer) => dequantizeSafetensors(from, sink, packer, options));
  progress.done();
  console.log(`${escapeForTerminal(output)}: unpacked ${report.unpacked} tensor(s), copied ${report.copied} unchanged, on ${kind}; ${formatBytes(report.bytesIn)} -> ${formatBytes(report.bytesOut)}`);
  return 0;
}

/** A packed TensorFlow.js model back to a stock float one (model.json and 4 MiB shards). */
async function dequantizeTfjsModel(args: ParsedArgs, input: string, output: string, progress: Progress): Promise<number> {
  const packer = await openPacker(args);
  try {
    const result = await dequantizeTfjsFile(input, output, packer);
    progress.done();
    console.log(
      `${escapeForTerminal(output)} (+ ${result.shards.length} shard(s)): unpacked ${result.unpacked} weight(s), copied ${result.copied} unchanged, on ${packer.kind}; ` +
        `${formatBytes(result.bytesIn)} -> ${formatBytes(result.bytesOut)}`,
    );
  } catch (error) {
    throw naming(error, input);
  } finally {
    packer.dispose();
  }
  return 0;
}
