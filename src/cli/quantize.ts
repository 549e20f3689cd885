// `edge-moq quantize <in> -o <out> --bits B ...`: packs a checkpoint's or a model's weights
// (safetensors, a sharded checkpoint's index, an ONNX model or a TensorFlow.js model.json, told
// apart by content), streaming, and prints what it did and what it cost in accuracy.

import { InvalidInputError } from '../errors.js';
import { quantizeSafetensorsFile, type FileQuantizeOptions, type FileQuantizeReport } from '../node/file-jobs.js';
import { quantizeShardedCheckpoint } from '../node/shard-jobs.js';
import { quantizeTfjsFile, type QuantizeTfjsFileResult } from '../formats/tfjs/node-file.js';
import { quantizeSafetensors, type QuantizeFileOptions, type QuantizeReport } from '../formats/quantize-file.js';
import { compileNamePattern } from '../name-pattern.js';
import { onnxOptionsFrom } from '../formats/onnx/options.js';
import { choiceFlag, integerFlag, signedIntegerFlag, stringFlag, type ParsedArgs } from './args.js';
import { naming } from './file-errors.js';
import { readRecipeFile } from './recipe-file.js';
import { openPacker } from './packer.js';
import { createProgress, type Progress } from './progress.js';
import { formatBytes } from '../describe.js';
import { table } from './table.js';
import { openDetected, safetensorsPass } from './safetensors-pass.js';
import { escapeForTerminal } from './terminal.js';

export async function quantizeCommand(args: ParsedArgs): Promise<number> {
  const [input] = args.positionals;
  const output = stringFlag(args, 'output');
  if (!input || !output || args.positionals.length > 1) {
    throw new InvalidInputError('INVALID_ARGUMENT', 'usage: edge-moq quantize <in.safetensors> -o <out.safetensors> --bits B [options]; see edge-moq --help.');
  }
  if (args.flags.has('group-size') && args.flags.has('groups')) {
    throw new InvalidInputError('INVALID_ARGUMENT', 'give --group-size or --groups, not both.');
  }
  const options: QuantizeFileOptions = { bits: integerFlag(args, 'bits', 4, 1) };
  if (args.flags.has('group-size')) options.groupSize = integerFlag(args, 'group-size', 1, 1);
  if (args.flags.has('groups')) options.groups = integerFlag(args, 'groups', 1, 1);
  if (args.flags.has('seed')) options.seed = integerFlag(args, 'seed', 0, 0);
  const axis = signedIntegerFlag(args, 'axis');
  if (axis !== undefined) options.axis = axis;
  const type = choiceFlag(args, 'type', ['symmetric', 'asymmetric'] as const);
  if (type !== undefined) options.type = type;
  // The grid is a symmetric one: asymmetric codes take none unless one is asked for (and refused).
  const grid = choiceFlag(args, 'grid', GRIDS);
  if (grid !== undefined || type !== 'asymmetric') options.grid = grid ?? DEFAULT_GRID;
  const rounding = choiceFlag(args, 'rounding', ['nearest', 'stochastic'] as const);
  if (rounding !== undefined) options.rounding = rounding;
  for (const name of ['include', 'exclude'] as const) {
    const pattern = stringFlag(args, name);
    if (pattern === undefined) continue;
    compileNamePattern(pattern, `--${name}`); // refused here, under the option's own name
    options[name] = pattern;
  }
  if (args.flags.get('include-vectors') === true) options.includeVectors = true;
  const recipe = stringFlag(args, 'recipe');
  if (recipe !== undefined) options.recipe = await readRecipeFile(recipe);
  const progress = createProgress('quantize', { quiet: args.flags.has('quiet') });
  options.onProgress = (p) => progress.update(p.bytesTotal ? p.bytesDone / p.bytesTotal : 1, p.tensor ? `${p.index + 1}/${p.count} ${p.tensor}` : '');

  // Both ends are checked before the backend loads or anything is read.
  const { source, format } = await openDetected(input);
  // ONNX models and checkpoint indexes open their own files (external data, shards); anything
  // else is read as safetensors, which says what is wrong with a file that is not.
  if (format === 'onnx' || format === 'safetensors-index' || format === 'tfjs' || !args.flags.has('bits')) await source.close();
  if ((format === 'onnx' || format === 'tfjs') && args.flags.has('workers')) {
    throw new InvalidInputError(
      'INVALID_ARGUMENT',
      `--workers applies to safetensors files and sharded checkpoints; ${format === 'onnx' ? 'ONNX' : 'TensorFlow.js'} models are packed in this thread.`,
    );
  }
  if (format === 'onnx') return quantizeOnnxModel(args, input, output, options, progress);
  if (!args.flags.has('bits')) {
    throw new InvalidInputError('INVALID_ARGUMENT', `--bits is required for ${format === 'tfjs' ? 'TensorFlow.js models' : 'safetensors'} (1..16), e.g. --bits 4.`);
  }
  if (format === 'tfjs') return quantizeTfjsModelFile(args, input, output, options, progress);
  if (format === 'safetensors-index') return quantizeCheckpoint(args, input, output, options, progress);
  const backend = args.flags.get('backend') ?? 'auto';
  if (backend === 'auto' || backend === 'wasm-simd' || backend === 'wasm') {
    await source.close();
    return quantizeOnWorkers(args, input, output, { ...options, backend }, progress);
  }
  if (args.flags.has('workers') && integerFlag(args, 'workers', 1, 1) > 1) {
    throw new InvalidInputError(
      'INVALID_ARGUMENT',
      `--workers ${String(args.flags.get('workers'))} packs on WebAssembly worker threads, where WebGPU is not available; use --workers 1 with --backend webgpu.`,
    );
  }
  const { result: report, kind } = await safetensorsPass(args, source, input, output, (from, sink, packer) => quantizeSafetensors(from, sink, packer, options));
  progress.done();
  printReport(report, output, kind);
  return 0;
}

/** A safetensors file on WebAssembly: its tensors packed on --workers threads (default: as many as pay). */
async function quantizeOnWorkers(args: ParsedArgs, input: string, output: string, options: FileQuantizeOptions, progress: Progress): Promise<number> {
  let report: FileQuantizeReport;
  try {
    report = await quantizeSafetensorsFile(input, output, { ...options, ...(args.flags.has('workers') ? { workers: integerFlag(args, 'workers', 1, 1) } : {}) });
  } catch (error) {
    throw naming(error, input);
  }
  progress.done();
  printReport(report, output, report.workers > 1 ? `${report.backend}, ${report.workers} threads (this one and ${report.workers - 1} worker${report.workers === 2 ? '' : 's'})` : report.backend);
  return 0;
}

/**
 * The grids the CLI packs on, and its default: post-training quantization measured better on
 * the full grid (onnxruntime's and ggml's) than on DeepSpeed's, which MoQ training keeps.
 */
const GRIDS = ['full', 'deepspeed'] as const;
const DEFAULT_GRID = 'full';

/** An ONNX model: MatMuls with constant weights become MatMulNBits (edge-moq/onnx). */
async function quantizeOnnxModel(args: ParsedArgs, input: string, output: string, options: QuantizeFileOptions, progress: Progress): Promise<number> {
  for (const flag of ['groups', 'axis', 'rounding', 'seed', 'include-vectors']) {
    if (args.flags.has(flag)) {
      throw new InvalidInputError('INVALID_ARGUMENT', `--${flag} does not apply to ONNX models: MatMulNBits takes blocks of --group-size along K, rounded to nearest.`);
    }
  }
  // Loaded on demand: the ONNX reader brings protobufjs, which no other command needs.
  const { quantizeOnnxFile } = await import('../formats/onnx/node-file.js');
  const packer = await openPacker(args);
  let result: Awaited<ReturnType<typeof quantizeOnnxFile>>;
  try {
    result = await quantizeOnnxFile(input, output, packer, onnxOptionsFrom(options));
  } catch (error) {
    throw naming(error, input);
  } finally {
    packer.dispose();
  }
  progress.done();
  const { report } = result;
  const rows = report.matmuls.map((m) => [
    m.weight,
    `${m.op}${m.node ? ` ${m.node}` : ''}`,
    `[${m.shape.join(', ')}]`,
    m.dtype,
    `${m.type} ${m.bits}-bit, blocks of ${m.blockSize}${m.rule === undefined ? '' : ` (rule ${m.rule + 1})`}`,
    formatBytes(m.bytesIn),
    formatBytes(m.bytesOut),
    m.maxAbsError.toPrecision(3),
    m.rmsError.toPrecision(3),
  ]);
  console.log(table(['weight', 'node', 'shape', 'dtype', 'packed as', 'in', 'out', 'max |err|', 'rms err'], rows));
  const written = `${escapeForTerminal(output)}${result.externalData ? ` (+ ${escapeForTerminal(result.externalData)})` : ''}`;
  if (report.matmuls.length === 0) {
    console.log(`\n${written}: no MatMul, Gemm or Gather has a constant float weight that was selected; the model was written unchanged.`);
    return 0;
  }
  const ratio = report.bytesIn / report.bytesOut;
  console.log(
    `\n${written}: ${report.matmuls.length} weight(s) to MatMulNBits/GatherBlockQuantized, on ${packer.kind}; weights ` +
      `${formatBytes(report.bytesIn)} -> ${formatBytes(report.bytesOut)} (${ratio >= 1 ? `${ratio.toFixed(2)}x smaller` : `${(1 / ratio).toFixed(2)}x larger`})`,
  );
  return 0;
}

/** A TensorFlow.js model: its model.json in, a model.json and its packed weights file out. */
async function quantizeTfjsModelFile(args: ParsedArgs, input: string, output: string, options: QuantizeFileOptions, progress: Progress): Promise<number> {
  const packer = await openPacker(args);
  let result: QuantizeTfjsFileResult;
  try {
    result = await quantizeTfjsFile(input, output, packer, options);
  } catch (error) {
    throw naming(error, input);
  } finally {
    packer.dispose();
  }
  progress.done();
  printReport(result.report, `${output} (+ ${result.weightsPath})`, packer.kind);
  return 0;
}

/** A Hugging Face sharded checkpoint: its index in, a folder of shards and a new index out. */
async function quantizeCheckpoint(args: ParsedArgs, index: string, folder: string, options: QuantizeFileOptions, progress: Progress): Promise<number> {
  const backend = choiceFlag(args, 'backend', ['auto', 'wasm-simd', 'wasm', 'webgpu'] as const) ?? 'auto';
  if (backend === 'webgpu') {
    throw new InvalidInputError('INVALID_ARGUMENT', 'a sharded checkpoint is quantized on worker threads, where WebGPU is not available; use --backend auto, wasm-simd or wasm.');
  }
  if (args.flags.has('jobs') && args.flags.has('workers')) {
    throw new InvalidInputError('INVALID_ARGUMENT', 'give --jobs or --workers, not both: for a sharded checkpoint they are the same (worker threads, a shard each).');
  }
  const { onProgress, ...rest } = options;
  const report = await quantizeShardedCheckpoint(index, folder, {
    ...rest,
    backend,
    ...(args.flags.has('jobs') ? { jobs: integerFlag(args, 'jobs', 1, 1) } : {}),
    ...(args.flags.has('workers') ? { jobs: integerFlag(args, 'workers', 1, 1) } : {}),
    ...(args.flags.has('shard') ? { shard: stringFlag(args, 'shard')! } : {}),
    onProgress: (p) => onProgress?.({ ...p, tensor: p.tensor ? `${p.shard}: ${p.tensor}` : '' }),
  });
  progress.done();
  const tensors = report.shards.flatMap((s) => s.report.tensors);
  const bytesIn = report.shards.reduce((n, s) => n + s.report.bytesIn, 0);
  const bytesOut = report.shards.reduce((n, s) => n + s.report.bytesOut, 0);
  const packed = tensors.filter((t) => t.packed).length;
  printReport(
    { tensors, packed, skipped: tensors.length - packed, bytesIn, bytesOut, ratio: bytesIn / bytesOut, warnings: report.warnings },
    `${report.index} (${report.shards.length} shard(s)${report.piece ? `, piece ${report.piece.index}/${report.piece.count}` : ''})`,
    'WebAssembly workers',
  );
  return 0;
}

/** Beyond this many tensors the summary shows the ones with the largest errors, and counts the rest. */
const SUMMARY_ROWS = 50;
/** Warnings printed before the rest are counted. */
const SUMMARY_WARNINGS = 10;

function printReport(report: QuantizeReport, output: string, kind: string): void {
  const shown = report.tensors.length <= SUMMARY_ROWS ? report.tensors : [...report.tensors].sort((a, b) => (b.rmsError ?? -1) - (a.rmsError ?? -1)).slice(0, SUMMARY_ROWS);
  const rows = shown.map((t) => [
    t.name,
    `[${t.shape.join(', ')}]`,
    t.dtype,
    t.packed ? `${t.type} ${t.bits}-bit, groups of ${t.groupSize}${t.rule === undefined ? '' : ` (rule ${t.rule + 1})`}${t.note ? `; ${t.note}` : ''}` : `kept: ${t.reason}`,
    formatBytes(t.bytesIn),
    formatBytes(t.bytesOut),
    t.packed ? t.maxAbsError!.toPrecision(3) : '',
    t.packed ? t.rmsError!.toPrecision(3) : '',
  ]);
  console.log(table(['tensor', 'shape', 'dtype', 'packed as', 'in', 'out', 'max |err|', 'rms err'], rows));
  if (shown.length < report.tensors.length) {
    console.log(`(the ${SUMMARY_ROWS} tensors with the largest rms error of ${report.tensors.length}; ${report.packed} packed, ${report.skipped} kept)`);
  }
  const change = report.ratio >= 1 ? `${report.ratio.toFixed(2)}x smaller` : `${(1 / report.ratio).toFixed(2)}x larger`;
  console.log(
    `\n${escapeForTerminal(output)}: packed ${report.packed} tensor(s), kept ${report.skipped} unchanged, on ${kind}; ` +
      `${formatBytes(report.bytesIn)} -> ${formatBytes(report.bytesOut)} (${change})`,
  );
  for (const warning of report.warnings.slice(0, SUMMARY_WARNINGS)) console.error(`edge-moq: warning: ${escapeForTerminal(warning)}`);
  if (report.warnings.length > SUMMARY_WARNINGS) console.error(`edge-moq: ${report.warnings.length - SUMMARY_WARNINGS} more warning(s) of the same kind`);
}
