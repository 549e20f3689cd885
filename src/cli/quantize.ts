// `edge-moq quantize <in.safetensors> -o <out.safetensors> --bits B ...`: packs a checkpoint's
// weights (edge-moq.packed/1), streaming, and prints what it did and what it cost in accuracy.

import { InvalidInputError } from '../errors.js';
import { atomicFileSink, checkOutputFile, fileSource } from '../formats/node-file.js';
import { quantizeSafetensors, type QuantizeFileOptions, type QuantizeReport } from '../formats/quantize-file.js';
import { integerFlag, type ParsedArgs } from './args.js';
import { naming } from './file-errors.js';
import { openPacker } from './packer.js';
import { createProgress } from './progress.js';
import { formatBytes, table } from './table.js';

export async function quantizeCommand(args: ParsedArgs): Promise<number> {
  const [input] = args.positionals;
  const output = args.flags.get('o') ?? args.flags.get('output');
  if (!input || typeof output !== 'string' || args.positionals.length > 1) {
    throw new InvalidInputError('INVALID_ARGUMENT', 'usage: edge-moq quantize <in.safetensors> -o <out.safetensors> --bits B [options]; see edge-moq --help.');
  }
  if (!args.flags.has('bits')) throw new InvalidInputError('INVALID_ARGUMENT', '--bits is required (1..16), e.g. --bits 4.');
  if (args.flags.has('group-size') && args.flags.has('groups')) {
    throw new InvalidInputError('INVALID_ARGUMENT', 'give --group-size or --groups, not both.');
  }
  const options: QuantizeFileOptions = { bits: integerFlag(args, 'bits', 8, 1) };
  if (args.flags.has('group-size')) options.groupSize = integerFlag(args, 'group-size', 1, 1);
  if (args.flags.has('groups')) options.groups = integerFlag(args, 'groups', 1, 1);
  if (args.flags.has('seed')) options.seed = integerFlag(args, 'seed', 0, 0);
  const type = args.flags.get('type');
  if (type !== undefined) options.type = type as QuantizeFileOptions['type'] & string;
  const rounding = args.flags.get('rounding');
  if (rounding !== undefined) options.rounding = rounding as QuantizeFileOptions['rounding'] & string;
  for (const name of ['include', 'exclude'] as const) {
    const pattern = args.flags.get(name);
    if (pattern === undefined) continue;
    try {
      options[name] = new RegExp(String(pattern));
    } catch (cause) {
      throw new InvalidInputError('INVALID_ARGUMENT', `--${name} ${String(pattern)} is not a valid regular expression: ${(cause as Error).message}`);
    }
  }
  if (args.flags.get('include-vectors') === true) options.includeVectors = true;
  const progress = createProgress('quantize');
  options.onProgress = (p) => progress.update(p.bytesTotal ? p.bytesDone / p.bytesTotal : 1, p.tensor ? `${p.index + 1}/${p.count} ${p.tensor}` : '');

  // Both ends are checked before the backend loads or anything is read.
  const source = await fileSource(input);
  let report: QuantizeReport;
  let kind: string;
  try {
    await checkOutputFile(output, { distinctFrom: [source] });
    const packer = await openPacker(args);
    kind = packer.kind;
    try {
      report = await quantizeSafetensors(source, atomicFileSink(output, { distinctFrom: [source] }), packer, options);
    } finally {
      packer.dispose();
    }
  } catch (error) {
    throw naming(error, input);
  } finally {
    await source.close();
  }
  progress.done();
  printReport(report, output, kind);
  return 0;
}

function printReport(report: QuantizeReport, output: string, kind: string): void {
  const rows = report.tensors.map((t) => [
    t.name, `[${t.shape.join(', ')}]`, t.dtype,
    t.packed ? `${t.type} ${t.bits}-bit, groups of ${t.groupSize}` : `kept: ${t.reason}`,
    formatBytes(t.bytesIn), formatBytes(t.bytesOut),
    t.packed ? t.maxAbsError!.toPrecision(3) : '', t.packed ? t.rmsError!.toPrecision(3) : '',
  ]);
  console.log(table(['tensor', 'shape', 'dtype', 'packed as', 'in', 'out', 'max |err|', 'rms err'], rows));
  const change = report.ratio >= 1 ? `${report.ratio.toFixed(2)}x smaller` : `${(1 / report.ratio).toFixed(2)}x larger`;
  console.log(`\n${output}: packed ${report.packed} tensor(s), kept ${report.skipped} unchanged, on ${kind}; ` +
    `${formatBytes(report.bytesIn)} -> ${formatBytes(report.bytesOut)} (${change})`);
  for (const warning of report.warnings) console.error(`edge-moq: warning: ${warning}`);
}
