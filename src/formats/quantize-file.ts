// safetensors in, `edge-moq.packed/1` safetensors out, streaming: tensor by tensor and chunk by
// chunk (pack-tensor.ts), so that memory stays near the chunk size whatever the file, the
// tensors or the groups. This module decides what becomes of each tensor and lays out the
// output. A file already packed by edge-moq keeps its packed tensors and their records, so two
// runs compose (e.g. 8 bits for some tensors, then 4 for the rest).

import { InvalidInputError } from '../errors.js';
import { compileNamePattern, type NamePattern } from '../name-pattern.js';
import { tensorIdOf } from '../noise.js';
import type { Grid } from '../kernel-plan.js';
import { planPack, type PackOptions, type PackPlan } from '../packed/layout.js';
import type { Packer } from '../packed/packer.js';
import { DEFAULT_CHUNK_BYTES, MAX_WHOLE_GROUP_BYTES } from './chunking.js';
import type { PositionalByteSink } from './node-file.js';
import { packTensor, PackScratch, type ScaleTarget } from './pack-tensor.js';
import { readAheadSource } from './read-ahead.js';
import { checkSettings, compileRecipe, type CompiledRecipe, type Recipe, type RecipeRule } from './recipe.js';
import { axisProblem, axisView } from './axis.js';
import { isPackedFile, packedEntry, packedMetadata, packedNames, readPackedLayout, type PackedEntry, type PackedParts } from './packed-metadata.js';
import {
  createSafetensorsWriter,
  isFloatDtype,
  openSafetensors,
  readByteChunks,
  type ByteSink,
  type ByteSource,
  type SafetensorsFile,
  type SafetensorsWriter,
  type TensorInfo,
  type TensorSpec,
} from './safetensors.js';

/** Stochastic noise is indexed by a 32-bit element counter (identical on every backend). */
const MAX_STOCHASTIC_ELEMENTS = 2 ** 32;

/** How quantizeSafetensors packs a file: the settings for every tensor, or a recipe per name. */
export interface QuantizeFileOptions {
  /** Code width, 1 to 8 (1 binary, 2 ternary). */
  bits: number;
  /** Elements per group. Default: the last dimension (one group per row). */
  groupSize?: number;
  /** Groups per tensor, instead of groupSize. */
  groups?: number;
  type?: 'symmetric' | 'asymmetric';
  /** The symmetric grid: DeepSpeed's (default) or the full one onnxruntime and ggml use. */
  grid?: Grid;
  /**
   * The dimension groups run along (negative counts from the end; default the last). Groups
   * span dimensions 0..axis for each index of the dimensions after it: axis 0 of a [K, N]
   * matrix groups along K for each column (src/formats/axis.ts).
   */
  axis?: number;
  /**
   * The axis of a tensor that neither `axis` nor a recipe rule gives one (default: the last):
   * how a format says where its output channels are (a tfjs conv kernel's are its last dimension,
   * so its groups run along axis rank-2).
   */
  axisFor?: (name: string, shape: readonly number[]) => number;
  rounding?: 'nearest' | 'stochastic';
  /** Stochastic rounding: each tensor's noise stream is (seed, 0, tensorIdOf(name)). */
  seed?: number;
  /**
   * Only tensors whose name matches are packed: a pattern (a string, or a RegExp read from its
   * source and flags) matched in linear time (src/name-pattern.ts), so no pattern can hang a run.
   */
  include?: string | RegExp;
  /** Tensors whose name matches are stored unchanged (a pattern, as `include`). */
  exclude?: string | RegExp;
  /**
   * Per-tensor settings as ordered rules (recipe.ts): the first rule whose pattern matches a
   * tensor's name decides it (its bits, groups, type, rounding, or keep); the options above are
   * the defaults. A rule may pack 1-D tensors without includeVectors.
   */
  recipe?: Recipe | readonly RecipeRule[];
  /**
   * The recipe's use was checked over a whole checkpoint (recipe.ts checkRecipeAcross): a file
   * whose tensors no rule matches is not an error, and rules it does not use are not warned of.
   */
  recipeChecked?: boolean;
  /** Pack 1-D tensors too (MoQ leaves biases and norms alone; so does this, by default). */
  includeVectors?: boolean;
  /** Float32 bytes read per chunk (default 16 MiB). Memory stays near a few chunks. */
  chunkBytes?: number;
  /** Called before each tensor and as its chunks are packed. */
  onProgress?: (progress: QuantizeProgress) => void;
}

/** Where quantizeSafetensors is in the file. */
export interface QuantizeProgress {
  /** The tensor being written ('' once all are done). */
  tensor: string;
  /** 0-based index of the tensor, and how many there are. */
  index: number;
  count: number;
  /** Input bytes processed so far, of all. */
  bytesDone: number;
  bytesTotal: number;
}

/** What happened to one tensor: packed, or stored unchanged and why. */
export interface TensorReport {
  name: string;
  dtype: string;
  shape: readonly number[];
  packed: boolean;
  /** Why a tensor was stored unchanged. */
  reason?: string;
  bits?: number;
  type?: string;
  groupSize?: number;
  bytesIn: number;
  bytesOut: number;
  /** The recipe rule that decided the tensor (its index in the recipe, from 0). */
  rule?: number;
  /** How the default grouping was adapted (a last dimension of 1). */
  note?: string;
  /** Packed tensors: the largest |x − dequantized x| and the root-mean-square error. */
  maxAbsError?: number;
  rmsError?: number;
}

/** What quantizeSafetensors wrote: each tensor, the counts and sizes, and what to look at. */
export interface QuantizeReport {
  tensors: TensorReport[];
  packed: number;
  skipped: number;
  bytesIn: number;
  bytesOut: number;
  /** bytesIn / bytesOut of the whole file (below 1 when the output is larger). */
  ratio: number;
  /** What the caller should know, e.g. tensors that packing made larger. */
  warnings: string[];
}

interface Decision {
  tensor: TensorInfo;
  /** Null: stored unchanged, for `reason`. */
  plan: PackPlan | null;
  options?: PackOptions;
  reason?: string;
  /** The dimension its groups run along. */
  axis?: number;
  /** The recipe rule that decided it (its index). */
  rule?: number;
  /** How the default grouping was adapted to the tensor. */
  note?: string;
}

/** One tensor of the output, in file order. */
type Item =
  | { kind: 'copy'; tensor: TensorInfo; reason: string; rule?: number }
  | { kind: 'carry'; parts: PackedParts }
  | { kind: 'pack'; tensor: TensorInfo; plan: PackPlan; options: PackOptions; axis: number; rule?: number; note?: string };

const isPositional = (sink: ByteSink): sink is PositionalByteSink => typeof (sink as Partial<PositionalByteSink>).writeAt === 'function';

/** A tensor to pack, as decided: what packing it needs besides the file's bytes (plain data, so it can cross to a worker thread). */
export interface PackRequest {
  tensor: TensorInfo;
  plan: PackPlan;
  options: PackOptions;
  /** The dimension its groups run along. */
  axis: number;
}

/** A packed tensor's error summary (TensorReport's). */
export interface PackErrors {
  maxAbsError: number;
  rmsError: number;
}

/**
 * Who packs the tensors quantizeSafetensorsWith decided to pack: packTensor on a Packer in this
 * thread (quantizeSafetensors), or worker threads (src/node/file-jobs.ts). Either way each
 * tensor's parts reach the writer in file order, so the output bytes are the same.
 */
export interface TensorPacking {
  /**
   * Called once, before the first pack(), with every tensor to pack in file order (work may
   * start ahead of the writer), the file read (front to back), and the chunk size.
   */
  start(file: SafetensorsFile, requests: readonly PackRequest[], chunkBytes: number): Promise<void>;
  /**
   * Writes requests[index]'s parts to `writer` in the order its specs put them (the scales
   * through `target` when there is one); `progress` takes the tensor's input bytes done.
   */
  pack(index: number, writer: SafetensorsWriter, target: ScaleTarget | null, progress: (bytesDone: number) => void): Promise<PackErrors>;
  /** Called once when the run ends, finished or failed (after start()). */
  finish(): Promise<void>;
}

/** packTensor in this thread: every tensor with one Packer and one PackScratch. */
export function inThreadPacking(packer: Packer): TensorPacking {
  let file: SafetensorsFile;
  let requests: readonly PackRequest[] = [];
  let chunkBytes = DEFAULT_CHUNK_BYTES;
  const scratch = new PackScratch();
  return {
    async start(data, all, bytes) {
      file = data;
      requests = all;
      chunkBytes = bytes;
    },
    pack(index, writer, target, progress) {
      const { tensor, plan, options, axis } = requests[index]!;
      return packTensor(file, tensor, plan, options, packer, scratch, writer, target, chunkBytes, progress, axis);
    },
    async finish() {},
  };
}

/**
 * Quantizes the safetensors file in `source` into `sink`. The sink is aborted on any error, so
 * no partial output survives (use atomicFileSink from node-file.ts for files).
 * @param source The float safetensors file.
 * @param sink Where the packed file is written.
 * @param packer The packer that quantizes the tensors.
 * @param options The bits and grouping, or a recipe per tensor name.
 * @returns What happened to each tensor, and the sizes.
 */
export function quantizeSafetensors(source: ByteSource, sink: ByteSink, packer: Packer, options: QuantizeFileOptions): Promise<QuantizeReport> {
  return quantizeSafetensorsWith(source, sink, inThreadPacking(packer), options);
}

/** quantizeSafetensors with the tensors packed by `packing`: same decisions, same layout, same bytes. */
export async function quantizeSafetensorsWith(source: ByteSource, sink: ByteSink, packing: TensorPacking, options: QuantizeFileOptions): Promise<QuantizeReport> {
  let items: Item[];
  const recipeWarnings: string[] = [];
  let file: SafetensorsFile;
  let carried: PackedParts[];
  try {
    const patterns = checkOptions(options);
    file = await openSafetensors(source);
    const layout = isPackedFile(file) ? readPackedLayout(file) : { packed: [], plain: file.tensors };
    carried = layout.packed;
    items = planItems(file, layout, options, patterns);
    if (patterns.recipe && !options.recipeChecked) recipeWarnings.push(...checkRecipeUse(patterns.recipe, items));
  } catch (error) {
    await sink.abort().catch(() => undefined);
    throw error;
  }
  const positional = isPositional(sink);
  const specs: TensorSpec[] = [];
  const entries = new Map<string, PackedEntry>(carried.map((p) => [p.name, p.entry]));
  for (const item of items) {
    if (item.kind === 'copy') {
      specs.push({ name: item.tensor.name, dtype: item.tensor.dtype, shape: item.tensor.shape });
    } else if (item.kind === 'carry') {
      for (const part of partsOf(item.parts)) specs.push({ name: part.name, dtype: part.dtype, shape: part.shape });
    } else {
      const { tensor, plan } = item;
      const names = packedNames(tensor.name);
      const codes: TensorSpec = { name: names.codes, dtype: 'U8', shape: [plan.codeBytes] };
      const groupSpecs: TensorSpec[] = [{ name: names.scales, dtype: 'F32', shape: [plan.groupCount] }];
      if (plan.type === 'asymmetric') groupSpecs.push({ name: names.zeros, dtype: 'F32', shape: [plan.groupCount] });
      // A positional sink takes the scales where they belong as they are made, so they come
      // first; otherwise they are held and follow the codes.
      specs.push(...(positional ? [...groupSpecs, codes] : [codes, ...groupSpecs]));
      entries.set(tensor.name, packedEntry(plan, tensor.shape, tensor.dtype, item.axis));
    }
  }
  const seen = new Set<string>();
  const clash = specs.find((spec) => seen.size === seen.add(spec.name).size);
  if (clash) {
    await sink.abort().catch(() => undefined);
    throw new InvalidInputError('INVALID_ARGUMENT', `the packed tensor "${clash.name}" would replace a tensor of that name already in the file; exclude one of them (--exclude).`);
  }
  const metadata = { ...file.metadata };
  delete metadata.format;
  delete metadata['edge-moq'];
  const writer = await createSafetensorsWriter(sink, { tensors: specs, metadata: packedMetadata(entries, metadata) });
  const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  // The data is read front to back, many tensors in one read where they are small.
  const data: SafetensorsFile = { ...file, source: readAheadSource(file.source) };
  const bytesTotal = file.tensors.reduce((sum, t) => sum + t.byteLength, 0);
  let bytesDone = 0;
  let specIndex = 0;
  const reports: TensorReport[] = [];
  const warnings: string[] = [...recipeWarnings];
  const copy = async (tensor: TensorInfo) => {
    for await (const bytes of readByteChunks(data, tensor, { chunkBytes })) await writer.write(bytes);
  };
  const requests = items.flatMap((item) => (item.kind === 'pack' ? [{ tensor: item.tensor, plan: item.plan, options: item.options, axis: item.axis }] : []));
  try {
    await packing.start(data, requests, chunkBytes);
    let requestIndex = 0;
    for (const [index, item] of items.entries()) {
      const name = item.kind === 'carry' ? item.parts.name : item.tensor.name;
      options.onProgress?.({ tensor: name, index, count: items.length, bytesDone, bytesTotal });
      if (item.kind === 'copy') {
        const { tensor } = item;
        await copy(tensor);
        reports.push({
          name,
          dtype: tensor.dtype,
          shape: tensor.shape,
          packed: false,
          reason: item.reason,
          bytesIn: tensor.byteLength,
          bytesOut: tensor.byteLength,
          ...(item.rule === undefined ? {} : { rule: item.rule }),
        });
        bytesDone += tensor.byteLength;
        specIndex++;
      } else if (item.kind === 'carry') {
        const { parts } = item;
        const partList = partsOf(parts);
        for (const part of partList) await copy(part);
        const bytes = partList.reduce((sum, part) => sum + part.byteLength, 0);
        reports.push({
          name,
          dtype: parts.entry.dtype,
          shape: parts.entry.shape,
          packed: false,
          reason: `already packed (${parts.entry.type} ${parts.entry.bits}-bit, groups of ${parts.entry.groupSize}): carried over`,
          bytesIn: bytes,
          bytesOut: bytes,
        });
        bytesDone += bytes;
        specIndex += partList.length;
      } else {
        const { tensor, plan } = item;
        const partCount = plan.type === 'asymmetric' ? 3 : 2;
        const places = writer.tensors.slice(specIndex, specIndex + partCount);
        const target = positional ? { sink, scales: places[0]!, zeros: plan.type === 'asymmetric' ? places[1]! : null } : null;
        const errors = await packing.pack(requestIndex++, writer, target, (done) => options.onProgress?.({ tensor: name, index, count: items.length, bytesDone: bytesDone + done, bytesTotal }));
        const bytesOut = plan.codeBytes + plan.groupCount * 4 * (plan.type === 'asymmetric' ? 2 : 1);
        reports.push({
          name,
          dtype: tensor.dtype,
          shape: tensor.shape,
          bytesIn: tensor.byteLength,
          packed: true,
          bits: plan.bits,
          type: plan.type,
          groupSize: plan.groupSize,
          bytesOut,
          ...errors,
          ...(item.rule === undefined ? {} : { rule: item.rule }),
          ...(item.note === undefined ? {} : { note: item.note }),
        });
        if (bytesOut > tensor.byteLength) {
          warnings.push(
            `tensor "${name}" is larger packed (${bytesOut} bytes) than as ${tensor.dtype} (${tensor.byteLength} bytes): ` +
              `its groups of ${plan.groupSize} spend more on scales than the codes save; use larger groups (--group-size) or --exclude it.`,
          );
        }
        bytesDone += tensor.byteLength;
        specIndex += partCount;
      }
    }
    options.onProgress?.({ tensor: '', index: items.length, count: items.length, bytesDone, bytesTotal });
    await writer.close();
  } catch (error) {
    await writer.abort().catch(() => undefined);
    await packing.finish().catch(() => undefined);
    throw error;
  }
  await packing.finish();
  const packed = reports.filter((r) => r.packed).length;
  return { tensors: reports, packed, skipped: reports.length - packed, bytesIn: source.size, bytesOut: writer.size, ratio: source.size / writer.size, warnings };
}

/**
 * A recipe that decides no tensor is a mistake (a typo in every pattern): refused before any
 * work. Rules that match nothing are warnings.
 */
function checkRecipeUse(recipe: CompiledRecipe, items: readonly Item[]): string[] {
  const used = new Set(items.map((item) => (item.kind === 'carry' ? undefined : item.rule)));
  if (![...used].some((rule) => rule !== undefined)) {
    throw new InvalidInputError(
      'INVALID_ARGUMENT',
      `the recipe's ${recipe.rules.length} rule(s) match no tensor of this file (patterns: ${recipe.rules.map((r) => JSON.stringify(r.rule.match)).join(', ')}); ` +
        'check them against the names `edge-moq inspect` lists; nothing was written.',
    );
  }
  return recipe.rules.filter((r) => !used.has(r.index)).map((r) => `recipe rule ${r.index + 1} (${JSON.stringify(r.rule.match)}) matches no tensor that an earlier rule did not take`);
}

const partsOf = (parts: PackedParts): TensorInfo[] => (parts.zeros ? [parts.codes, parts.scales, parts.zeros] : [parts.codes, parts.scales]);

/** The output's tensors in file order: packed parts carried whole, the rest decided one by one. */
function planItems(file: SafetensorsFile, layout: { packed: PackedParts[]; plain: readonly TensorInfo[] }, options: QuantizeFileOptions, patterns: Patterns): Item[] {
  const carriedByCodes = new Map(layout.packed.map((p) => [p.codes, p]));
  const plain = new Set(layout.plain);
  const items: Item[] = [];
  for (const tensor of file.tensors) {
    const parts = carriedByCodes.get(tensor);
    if (parts) {
      items.push({ kind: 'carry', parts });
    } else if (plain.has(tensor)) {
      const { plan, options: packOptions, reason, rule, note, axis } = decide(tensor, options, patterns);
      const decided = { ...(rule === undefined ? {} : { rule }), ...(note === undefined ? {} : { note }) };
      items.push(plan ? { kind: 'pack', tensor, plan, options: packOptions!, axis: axis!, ...decided } : { kind: 'copy', tensor, reason: reason!, ...decided });
    }
  }
  return items;
}

interface Patterns {
  include: NamePattern | null;
  exclude: NamePattern | null;
  recipe: CompiledRecipe | null;
}

function decide(tensor: TensorInfo, options: QuantizeFileOptions, patterns: Patterns): Omit<Decision, 'tensor'> {
  const skip = (reason: string) => ({ plan: null, reason });
  if (!isFloatDtype(tensor.dtype)) return skip(`${tensor.dtype} is not a float dtype`);
  if (patterns.include && !patterns.include.test(tensor.name)) return skip('not matched by --include');
  if (patterns.exclude?.test(tensor.name)) return skip('matched by --exclude');
  const rule = patterns.recipe?.ruleFor(tensor.name) ?? null;
  const by = rule ? ` (recipe rule ${rule.index + 1}, ${JSON.stringify(rule.rule.match)})` : '';
  if (rule?.rule.keep) return { ...skip(`kept by recipe rule ${rule.index + 1} (${JSON.stringify(rule.rule.match)})`), rule: rule.index };
  const settings = rule ? settle(options, rule.rule) : options;
  const decided = (decision: Omit<Decision, 'tensor'>) => (rule ? { ...decision, rule: rule.index } : decision);
  if (tensor.length === 0) return decided(skip('empty'));
  // A scalar is a constant of the model (a ReLU6 bound, a scale): one value has no group to share.
  if (tensor.shape.length === 0) return decided(skip('0-D scalar: never packed'));
  if (tensor.shape.length < 2 && !options.includeVectors && !rule) return skip(`${tensor.shape.length}-D (pass --include-vectors to pack it)`);
  let note: string | undefined;
  const rank = tensor.shape.length;
  let axis = options.axisFor?.(tensor.name, tensor.shape) ?? rank - 1;
  if (settings.axis !== undefined) {
    axis = settings.axis < 0 ? rank + settings.axis : settings.axis;
    if (axis < 0 || axis >= rank) return decided(skip(`it has no dimension ${settings.axis} (it has ${rank})${by}`));
  }
  let groupSize = settings.groups === undefined ? settings.groupSize : tensor.length / settings.groups;
  if (groupSize === undefined) {
    if (axis !== rank - 1) {
      // One group per column of the view: all of dimensions 0..axis, for each index of the rest
      // (per output channel of a Keras kernel, along K for each column of a MatMul B).
      groupSize = axisView(tensor.shape, axis).rows;
      if (groupSize === 1) return decided(skip(`dimensions 0..${axis} hold one value: groups along axis ${axis} would hold one value each; give another --axis${by}`));
    } else {
      // One group per row by default; a last dimension of 1 (a depthwise kernel [3, 3, C, 1])
      // would make groups of one, so the groups run along the innermost longer dimension.
      let inner = axis;
      while (inner >= 0 && tensor.shape[inner] === 1) inner--;
      if (inner < 0) return decided(skip('a single value: never packed'));
      groupSize = tensor.shape[inner]!;
      if (inner !== axis) note = `last dimension is 1: groups run along dimension ${inner} (${groupSize})`;
    }
  }
  if (!Number.isInteger(groupSize) || tensor.length % groupSize !== 0) {
    return decided(
      skip(settings.groups !== undefined ? `${settings.groups} groups do not divide ${tensor.length} elements${by}` : `group size ${groupSize} does not divide ${tensor.length} elements${by}`),
    );
  }
  const crossing = axis === rank - 1 ? null : axisProblem(tensor.shape, axis, groupSize);
  if (crossing) return decided(skip(`${crossing}${by}`));
  const stochastic = settings.rounding === 'stochastic';
  if (stochastic && tensor.length > MAX_STOCHASTIC_ELEMENTS) {
    throw new InvalidInputError(
      'INVALID_ARGUMENT',
      `tensor "${tensor.name}" has ${tensor.length} elements; stochastic rounding numbers elements with a 32-bit counter (the same on every backend), ` +
        `so it takes tensors of up to 2^32 elements. Use --rounding nearest, or --exclude this tensor and pack it in a second run; nothing was written.`,
    );
  }
  // Chunks are packed with the tensor's group size, whichever way the groups were given.
  const packOptions: PackOptions = {
    bits: settings.bits,
    groupSize,
    ...(settings.type ? { type: settings.type } : {}),
    ...(settings.grid ? { grid: settings.grid } : {}),
    ...(settings.rounding ? { rounding: settings.rounding } : {}),
    ...(stochastic ? { seed: options.seed ?? 0, tensorId: tensorIdOf(tensor.name) } : {}),
  };
  const plan = planPack(tensor.length, packOptions, `tensor "${tensor.name}"${by}`);
  if ((plan.type === 'ternary' || plan.type === 'binary') && plan.groupSize * 4 > MAX_WHOLE_GROUP_BYTES) {
    throw new InvalidInputError(
      'INVALID_ARGUMENT',
      `tensor "${tensor.name}": ${plan.type} groups of ${plan.groupSize} elements are larger than the ${MAX_WHOLE_GROUP_BYTES >> 20} MiB a ${plan.type} group may take in memory ` +
        `(its scale is a mean over the group, exact only when the group is packed whole); pass --group-size ${largestDivisorUpTo(tensor.length, MAX_WHOLE_GROUP_BYTES / 4)} ` +
        'or smaller, or --exclude the tensor; nothing was written.',
    );
  }
  return decided({ plan, options: packOptions, axis, ...(note ? { note } : {}) });
}

/** The run's options with a recipe rule's settings over them (groupSize and groups replace each other). */
function settle(options: QuantizeFileOptions, rule: RecipeRule): QuantizeFileOptions {
  const settled: QuantizeFileOptions = { ...options };
  if (rule.groupSize !== undefined || rule.groups !== undefined) {
    delete settled.groupSize;
    delete settled.groups;
  }
  for (const key of ['bits', 'groupSize', 'groups', 'type', 'rounding', 'grid', 'axis'] as const) {
    if (rule[key] !== undefined) (settled as unknown as Record<string, unknown>)[key] = rule[key];
  }
  // The run's grid is a symmetric one: a rule that makes its tensors asymmetric leaves it behind.
  if (rule.type === 'asymmetric' && rule.grid === undefined) delete settled.grid;
  return settled;
}

/** The largest divisor of `n` that is at most `limit` (a group size that fits a chunk). */
function largestDivisorUpTo(n: number, limit: number): number {
  for (let d = Math.min(n, limit); d > 1; d--) if (n % d === 0) return d;
  return 1;
}

function checkOptions(options: QuantizeFileOptions): Patterns {
  if (options === null || typeof options !== 'object') {
    throw new InvalidInputError('INVALID_ARGUMENT', 'options must be an object such as { bits: 4, groupSize: 32 }.');
  }
  // Validates bits, type, grid, rounding, seed, axis and the group options once, before any file is read.
  const { bits, type, grid, rounding, seed, groups, groupSize } = options;
  checkSettings(options as unknown as Record<string, unknown>, 'options');
  planPack(
    groups ?? groupSize ?? 1,
    {
      bits,
      ...(type ? { type } : {}),
      ...(grid ? { grid } : {}),
      ...(rounding ? { rounding } : {}),
      ...(seed !== undefined ? { seed } : {}),
      ...(groups !== undefined ? { groups } : {}),
      ...(groupSize !== undefined ? { groupSize } : {}),
    },
    'options',
  );
  if (options.chunkBytes !== undefined && !(Number.isInteger(options.chunkBytes) && options.chunkBytes > 0)) {
    throw new InvalidInputError('INVALID_ARGUMENT', `chunkBytes must be a positive integer, got ${String(options.chunkBytes)}.`);
  }
  const pattern = (value: string | RegExp | undefined, name: string) => (value === undefined ? null : compileNamePattern(value, `options.${name}`));
  return {
    include: pattern(options.include, 'include'),
    exclude: pattern(options.exclude, 'exclude'),
    recipe: options.recipe === undefined ? null : compileRecipe(options.recipe, 'options.recipe'),
  };
}
