// A TensorFlow.js model's model.json (graph or layers model): its topology, and a weights
// manifest whose groups each name shard files holding their weights back to back, in order.
// One validator for everything that reads one (CLI, handler, export), so a file tfjs would
// misread is refused here with what is wrong, before anything is read or written.
//
// A model packed by edge-moq says so at the top ("edgeMoq": {"format": PACKED_TFJS_FORMAT}).
// Its manifest is one group naming one weights file, an edge-moq packed safetensors file with
// one tensor per weight, and every weight's spec carries quantization dtype "edge-moq" (its
// tfjs quantization, if it had one, kept as "original"): stock tfjs refuses such a spec
// ("unknown quantization dtype edge-moq") instead of decoding the packed bytes as floats.

import { describeValue } from '../../describe.js';
import { FormatError } from '../../errors.js';
import { parseStrictJson } from '../strict-json.js';

/** The `edgeMoq.format` of a packed tfjs model.json. */
export const PACKED_TFJS_FORMAT = 'edge-moq.tfjs/1';
/** The quantization dtype of every weight of a packed model (stock tfjs refuses it). */
export const PACKED_QUANTIZATION = 'edge-moq';

/** The dtypes of tfjs weights. */
export type TfjsDtype = 'float32' | 'int32' | 'bool' | 'string' | 'complex64';
const DTYPES: readonly TfjsDtype[] = ['float32', 'int32', 'bool', 'string', 'complex64'];

/** tfjs's own weight quantization: affine uint8/uint16 (value = q * scale + min), or float16. */
export interface TfjsQuantization {
  dtype: 'uint8' | 'uint16' | 'float16';
  scale?: number;
  min?: number;
  original_dtype?: string;
}

/** A weight in a tfjs weights manifest: name, shape and dtype (and quantization, when tfjs quantized it). */
export interface TfjsWeightSpec {
  name: string;
  shape: number[];
  dtype: TfjsDtype;
  quantization?: TfjsQuantization;
}

/** A group of a tfjs weights manifest: its shard files and the weights their bytes hold, in order. */
export interface TfjsWeightGroup {
  paths: string[];
  weights: TfjsWeightSpec[];
}

/** A tfjs model.json: the topology, the weights manifest and, when packed, the edge-moq entry. */
export interface TfjsModelJson {
  modelTopology: unknown;
  weightsManifest: TfjsWeightGroup[];
  format?: string;
  [key: string]: unknown;
}

/** A packed model's weight spec: the original one, its quantization replaced by edge-moq's. */
export interface PackedWeightSpec extends Omit<TfjsWeightSpec, 'quantization'> {
  quantization: { dtype: typeof PACKED_QUANTIZATION; original?: TfjsQuantization };
}

const WHAT_TFJS = 'a TensorFlow.js model.json has "modelTopology" and a "weightsManifest" of { paths, weights } groups';

/**
 * Parses and checks a model.json; `what` names it in errors.
 * @param text - the model.json's text or bytes (UTF-8)
 * @param what - names the file in errors
 * @returns the model.json, checked
 * @throws FormatError naming what is not valid JSON or not a tfjs model
 */
export function parseTfjsModel(text: string | Uint8Array, what: string): TfjsModelJson {
  const json = typeof text === 'string' ? text : new TextDecoder('utf-8', { fatal: false }).decode(text);
  const value = parseStrictJson(json, (problem, index) => {
    throw new FormatError(`${what} is not valid JSON: ${problem} (at character ${index}); ${WHAT_TFJS}.`);
  });
  return checkTfjsModel(value, what);
}

/** Whether a parsed JSON value looks like a tfjs model (for telling formats apart by content). */
export function looksLikeTfjsModel(value: unknown): boolean {
  return isObject(value) && 'modelTopology' in value && ('weightsManifest' in value || 'edgeMoq' in value);
}

/**
 * Whether a checked model.json is a packed edge-moq model.
 * @param model - a model.json, as parseTfjsModel returns it
 * @returns whether its `edgeMoq.format` is the packed tfjs format
 */
export function isPackedTfjsModel(model: TfjsModelJson): boolean {
  return isObject(model.edgeMoq) && model.edgeMoq.format === PACKED_TFJS_FORMAT;
}

/** Every weight spec, in the order their bytes follow each other across the groups' shards. */
export function weightSpecs(model: TfjsModelJson): TfjsWeightSpec[] {
  return model.weightsManifest.flatMap((group) => group.weights);
}

/** The original spec of a packed model's weight (a plain model's specs are their own). */
export function originalSpec(spec: TfjsWeightSpec | PackedWeightSpec): TfjsWeightSpec {
  if (spec.quantization?.dtype !== PACKED_QUANTIZATION) return spec as TfjsWeightSpec;
  const { quantization, ...rest } = spec as PackedWeightSpec;
  return quantization.original ? { ...rest, quantization: quantization.original } : rest;
}

export function checkTfjsModel(value: unknown, what: string): TfjsModelJson {
  if (!isObject(value)) throw new FormatError(`${what} is not a TensorFlow.js model: it is ${describeValue(value)}, not a JSON object; ${WHAT_TFJS}.`);
  if (!('modelTopology' in value) || !isObject(value.modelTopology)) {
    throw new FormatError(`${what} is not a TensorFlow.js model: it has no "modelTopology" object; ${WHAT_TFJS}.`);
  }
  const manifest = value.weightsManifest;
  if (!Array.isArray(manifest)) {
    throw new FormatError(`${what} has no "weightsManifest" array, so its weights cannot be found; ${WHAT_TFJS}.`);
  }
  const names = new Set<string>();
  manifest.forEach((group, g) => {
    const at = `${what} weightsManifest[${g}]`;
    if (!isObject(group) || !Array.isArray(group.paths) || !Array.isArray(group.weights)) {
      throw new FormatError(`${at} must be an object { paths: [...], weights: [...] }, got ${describeValue(group)}.`);
    }
    group.paths.forEach((path, p) => checkShardPath(path, `${at}.paths[${p}]`));
    if (group.weights.length > 0 && group.paths.length === 0) throw new FormatError(`${at} lists ${group.weights.length} weight(s) but no shard file.`);
    group.weights.forEach((spec, w) => {
      checkSpec(spec, `${at}.weights[${w}]`);
      if (names.has(spec.name)) throw new FormatError(`${at}.weights[${w}]: the weight "${spec.name}" is listed twice; export the model again.`);
      names.add(spec.name);
    });
  });
  const model = value as TfjsModelJson;
  if ('edgeMoq' in value && !isPackedTfjsModel(model)) {
    throw new FormatError(`${what} has an "edgeMoq" field but not {"format": "${PACKED_TFJS_FORMAT}"}: it was written by another version of edge-moq, or edited.`);
  }
  const packed = isPackedTfjsModel(model);
  for (const spec of weightSpecs(model)) {
    const isPackedSpec = spec.quantization?.dtype === (PACKED_QUANTIZATION as string);
    if (packed !== isPackedSpec) {
      throw new FormatError(
        packed
          ? `${what} says it is packed by edge-moq, but weight "${spec.name}" has no edge-moq quantization: the file was edited; quantize the original model again.`
          : `${what}: weight "${spec.name}" has edge-moq quantization, but the model lacks "edgeMoq": {"format": "${PACKED_TFJS_FORMAT}"}: the file was edited.`,
      );
    }
  }
  if (packed && (manifest.length !== 1 || (manifest[0] as TfjsWeightGroup).paths.length !== 1)) {
    throw new FormatError(`${what} is packed by edge-moq, so its weightsManifest must be one group naming one weights file; it was edited.`);
  }
  return model;
}

/**
 * Shard paths are resolved against the model.json's folder or URL: an absolute path, a
 * backslash, a NUL or a ".." segment could name a file outside it, which no converter writes.
 * So could "%2e%2e" (URL resolution decodes it to ".."), and "?" or "#" would change the URL
 * the path resolves to: percent signs, query and fragment characters are refused too.
 */
export function checkShardPath(path: unknown, at: string): void {
  if (typeof path !== 'string' || path === '') throw new FormatError(`${at} must be a non-empty file name, got ${describeValue(path)}.`);
  // An absolute path is a path with an empty first segment.
  const outside = /[\\\0%?#]/.test(path) || /^[a-z][a-z0-9+.-]*:/i.test(path) || path.split('/').some((segment) => segment === '..' || segment === '');
  if (outside) {
    throw new FormatError(`${at} is ${describeValue(path)}: shard paths must be relative names inside the model's folder (no absolute path, "..", "//", "\\", "%", "?", "#" or scheme).`);
  }
}

function checkSpec(spec: unknown, at: string): asserts spec is TfjsWeightSpec {
  if (!isObject(spec)) throw new FormatError(`${at} must be an object { name, shape, dtype }, got ${describeValue(spec)}.`);
  if (typeof spec.name !== 'string' || spec.name === '') throw new FormatError(`${at}.name must be a non-empty string, got ${describeValue(spec.name)}.`);
  const label = `${at} ("${spec.name}")`;
  if (!Array.isArray(spec.shape) || !spec.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new FormatError(`${label}.shape must be an array of non-negative integers, got ${describeValue(spec.shape)}.`);
  }
  if (spec.shape.reduce((a: number, b: number) => a * b, 1) > Number.MAX_SAFE_INTEGER / 8) {
    throw new FormatError(`${label}.shape [${spec.shape.join(', ')}] holds more elements than any file can.`);
  }
  if (!DTYPES.includes(spec.dtype as TfjsDtype)) {
    throw new FormatError(`${label}.dtype is ${describeValue(spec.dtype)}, which TensorFlow.js does not have (it has ${DTYPES.join(', ')}).`);
  }
  if (spec.quantization !== undefined) checkQuantization(spec.quantization, spec.dtype as TfjsDtype, label);
}

function checkQuantization(q: unknown, dtype: TfjsDtype, label: string): void {
  if (!isObject(q)) throw new FormatError(`${label}.quantization must be an object, got ${describeValue(q)}.`);
  if (q.dtype === PACKED_QUANTIZATION) {
    if (q.original !== undefined) checkQuantization(q.original, dtype, `${label}.quantization.original`);
    return;
  }
  if (q.dtype === 'float16') {
    if (dtype !== 'float32') throw new FormatError(`${label}: float16 quantization applies to float32 weights only, not ${dtype}.`);
    return;
  }
  if (q.dtype !== 'uint8' && q.dtype !== 'uint16') {
    throw new FormatError(`${label}.quantization.dtype is ${describeValue(q.dtype)}; tfjs quantizes to uint8, uint16 or float16.`);
  }
  if (dtype !== 'float32' && dtype !== 'int32') throw new FormatError(`${label}: ${q.dtype} quantization applies to float32 and int32 weights only, not ${dtype}.`);
  if (!Number.isFinite(q.scale) || !Number.isFinite(q.min)) {
    throw new FormatError(`${label}: ${q.dtype} quantization needs finite "scale" and "min", got ${describeValue(q.scale)} and ${describeValue(q.min)}.`);
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
