// Hugging Face sharded checkpoints: `model.safetensors.index.json` maps each tensor name to the
// shard file that holds it (`weight_map`) and gives the data size (`metadata.total_size`). This
// module reads and writes those indexes and decides which shards a piece of a split run takes;
// the files themselves are Node's business (src/node/shard-jobs.ts).
//
// A split run gives shard k (0-based, in the order of the sorted shard file names) to piece
// k % n: every piece knows its shards from the index alone, without talking to the others.
// Each piece writes a partial index that records its piece number and every shard's name, so
// that merging can refuse a piece given twice, a missing piece and pieces of other runs.

import { describeName, describeValue } from '../describe.js';
import { FormatError, InvalidInputError } from '../errors.js';
import { parseStrictJson } from './strict-json.js';

/** The key of a partial index that says which piece of a split run it is. */
export const SHARD_PIECE_KEY = 'edge-moq.shard';

/** The environment variables `shard: 'auto/n'` reads its piece number from, in this order. */
export const SHARD_INDEX_VARIABLES = ['JOB_COMPLETION_INDEX', 'AWS_BATCH_JOB_ARRAY_INDEX'] as const;

/** A sharded checkpoint's index (`model.safetensors.index.json`), checked. */
export interface ShardIndex {
  /** The index's top-level entries in file order (metadata and weight_map included), as parsed. */
  readonly entries: ReadonlyArray<readonly [string, unknown]>;
  /** `metadata`, key order kept; `total_size` among them when the index has it. */
  readonly metadata: Readonly<Record<string, unknown>>;
  /** Tensor name → shard file name. */
  readonly weightMap: ReadonlyMap<string, string>;
  /** The shard file names, sorted (code unit order): shard k of a split run is shards[k]. */
  readonly shards: readonly string[];
}

/** Which piece of a run split across machines this is: shards k with k % count === index. */
export interface ShardPiece {
  index: number;
  count: number;
}

const malformed = (label: string, problem: string) =>
  new FormatError(`${label}: ${problem}; a sharded checkpoint's index is { "metadata": { "total_size": ... }, "weight_map": { tensor: shard file } }`);

const isRecord = (value: unknown): value is Record<string, unknown> => value !== null && typeof value === 'object' && !Array.isArray(value);

/**
 * Why a shard name from an index cannot be used as a file beside it, or null when it can. Shards
 * are files in the index's folder: a path into another folder (absolute, `..`, any separator)
 * could make a run read or overwrite files the index's author chose, not the user.
 */
function badShardName(name: string): string | null {
  if (name === '' || name === '.' || name === '..') return 'is not a file name';
  if (name.includes('\0')) return 'contains a NUL character';
  if (name.startsWith('/') || name.startsWith('\\') || /^[A-Za-z]:/.test(name)) return 'is an absolute path';
  if (/(^|[/\\])\.\.([/\\]|$)/.test(name)) return "leads out of the index's folder (..)";
  if (/[/\\]/.test(name)) return 'names a file in another folder (shards must be files beside the index)';
  return null;
}

/**
 * Parses and checks an index: strict JSON (no key given twice), `weight_map` an object of
 * tensor name → shard file name, each shard a plain file name beside the index, `metadata` an
 * object whose `total_size`, when present, is a byte count. `label` names the file in messages.
 * @param text - the index file's text
 * @param label - names the file in messages
 * @returns the tensor → shard map, the shards in order, and the metadata
 * @throws FormatError (`MALFORMED_FILE`) naming what breaks these rules
 */
export function parseShardIndex(text: string, label: string): ShardIndex {
  const parsed = parseStrictJson(text, (problem, index) => {
    throw malformed(label, `not valid JSON: ${problem} at character ${index}`);
  });
  if (!isRecord(parsed)) throw malformed(label, `the index is ${describeValue(parsed)}, not an object`);
  const { weight_map: weightMapValue, metadata = {} } = parsed;
  if (!isRecord(weightMapValue)) throw malformed(label, `"weight_map" is ${describeValue(weightMapValue)}, not an object`);
  if (!isRecord(metadata)) throw malformed(label, `"metadata" is ${describeValue(metadata)}, not an object`);
  const totalSize = metadata.total_size;
  if (totalSize !== undefined && !(Number.isSafeInteger(totalSize) && (totalSize as number) >= 0)) {
    throw malformed(label, `"metadata.total_size" is ${describeValue(totalSize)}, not a byte count`);
  }
  const weightMap = new Map<string, string>();
  const shards = new Set<string>();
  for (const [tensor, shard] of Object.entries(weightMapValue)) {
    if (typeof shard !== 'string') throw malformed(label, `"weight_map" maps ${describeName(tensor)} to ${describeValue(shard)}, not a file name`);
    const bad = badShardName(shard);
    if (bad) throw malformed(label, `"weight_map" maps ${describeName(tensor)} to ${describeValue(shard)}, which ${bad}; refused`);
    weightMap.set(tensor, shard);
    shards.add(shard);
  }
  return { entries: Object.entries(parsed), metadata, weightMap, shards: [...shards].sort(compareText) };
}

const compareText = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Reads a piece request: `{ index, count }`, `"i/n"`, or `"auto/n"`, which takes i from the
 * first of SHARD_INDEX_VARIABLES set in `env` (a Kubernetes Indexed Job's completion index,
 * an AWS Batch array job's index).
 * @param request - the piece, or its text form
 * @param env - the environment to read `auto`'s index from
 * @returns the piece: its index and the piece count
 * @throws InvalidInputError for a request that is malformed or out of range, or `auto` with no index variable set
 */
export function resolveShardPiece(request: ShardPiece | string, env: Readonly<Record<string, string | undefined>>): ShardPiece {
  let index: unknown;
  let count: unknown;
  if (typeof request === 'string') {
    const match = /^(auto|\d+)\/(\d+)$/.exec(request);
    if (!match) {
      throw new InvalidInputError('INVALID_ARGUMENT', `shard must be "i/n" (piece i of n, from 0) or "auto/n", got ${describeValue(request)}.`);
    }
    count = Number(match[2]);
    if (match[1] === 'auto') {
      const variable = SHARD_INDEX_VARIABLES.find((name) => env[name] !== undefined && env[name] !== '');
      if (variable === undefined) {
        throw new InvalidInputError(
          'INVALID_ARGUMENT',
          `shard "auto/${match[2]}" takes the piece number from ${SHARD_INDEX_VARIABLES.join(' or ')}, and neither is set: ` +
            'run it as a Kubernetes Indexed Job or an AWS Batch array job, or give the piece as "i/n".',
        );
      }
      const text = env[variable]!;
      if (!/^\d+$/.test(text)) throw new InvalidInputError('INVALID_ARGUMENT', `${variable} is ${describeValue(text)}, not a piece number.`);
      index = Number(text);
    } else {
      index = Number(match[1]);
    }
  } else if (isRecord(request)) {
    ({ index, count } = request);
  } else {
    throw new InvalidInputError('INVALID_ARGUMENT', `shard must be { index, count }, "i/n" or "auto/n", got ${describeValue(request)}.`);
  }
  if (!(Number.isSafeInteger(count) && (count as number) >= 1)) {
    throw new InvalidInputError('INVALID_ARGUMENT', `the number of pieces must be a positive integer, got ${describeValue(count)}.`);
  }
  if (!(Number.isSafeInteger(index) && (index as number) >= 0 && (index as number) < (count as number))) {
    throw new InvalidInputError('INVALID_ARGUMENT', `the piece number must be an integer from 0 to ${(count as number) - 1}, got ${describeValue(index)}.`);
  }
  return { index: index as number, count: count as number };
}

/**
 * The shards piece `piece` processes: shards[k] for every k with k % count === index.
 * @param shards - every shard, in the index's order
 * @param piece - which piece of how many
 * @returns this piece's shards, in order
 */
export function shardsOfPiece(shards: readonly string[], piece: ShardPiece): string[] {
  return shards.filter((_, k) => k % piece.count === piece.index);
}

/**
 * The file name of a piece's partial index: `model.safetensors.index.json` → `model.safetensors.index.shard-0-of-4.json`.
 * @param indexName - the index's file name
 * @param piece - which piece of how many
 * @returns the partial index's file name
 */
export function partialIndexName(indexName: string, piece: ShardPiece): string {
  return `${indexName.replace(/\.json$/, '')}.shard-${piece.index}-of-${piece.count}.json`;
}

/** One quantized shard: its file name and its tensors (name, data bytes) in file order. */
export interface ShardContents {
  file: string;
  tensors: ReadonlyArray<readonly [string, number]>;
}

/**
 * The text of the index of quantized shards: the input's entries in their order, `weight_map`
 * sorted by tensor name, `metadata.total_size` the sum of the tensors' data bytes, and for a
 * piece of a split run, SHARD_PIECE_KEY last. Two-space indentation and a final newline, as
 * transformers writes its indexes.
 */
export function shardIndexText(input: ShardIndex, outputs: readonly ShardContents[], piece: ShardPiece | null): string {
  const weightMap = new Map<string, string>();
  let totalSize = 0;
  for (const { file, tensors } of outputs) {
    for (const [name, bytes] of tensors) {
      const other = weightMap.get(name);
      if (other !== undefined) {
        throw new InvalidInputError(
          'INVALID_ARGUMENT',
          `the quantized shards ${describeValue(other)} and ${describeValue(file)} both hold a tensor named ${describeName(name)} ` +
            '(a packed part named like a tensor of another shard); exclude one of them (exclude).',
        );
      }
      weightMap.set(name, file);
      totalSize += bytes;
    }
  }
  return indexText(input.entries, input.metadata, weightMap, totalSize, piece ? { ...piece, shards: input.shards } : null);
}

function indexText(
  entries: ShardIndex['entries'],
  metadata: ShardIndex['metadata'],
  weightMap: ReadonlyMap<string, string>,
  totalSize: number,
  piece: (ShardPiece & { shards: readonly string[] }) | null,
): string {
  const sortedMap = Object.fromEntries([...weightMap].sort(([a], [b]) => compareText(a, b)));
  // An index without metadata gets it first, where transformers puts it. Built with
  // fromEntries, so that a key "__proto__" stays a key.
  const out: Array<readonly [string, unknown]> = entries.some(([key]) => key === 'metadata') ? [] : [['metadata', { total_size: totalSize }]];
  for (const [key, value] of entries) {
    if (key === SHARD_PIECE_KEY) continue;
    out.push([key, key === 'metadata' ? { ...metadata, total_size: totalSize } : key === 'weight_map' ? sortedMap : value]);
  }
  if (piece) out.push([SHARD_PIECE_KEY, { index: piece.index, count: piece.count, shards: piece.shards }]);
  return `${JSON.stringify(Object.fromEntries(out), null, 2)}\n`;
}

/**
 * Joins the partial indexes of every piece of a split run into the index a one-machine run
 * writes (the same text). Refused: a file that is not a partial index, pieces of different runs
 * (other piece counts, shards or metadata), a piece given twice, a missing piece, a tensor in
 * two pieces, a piece that maps a tensor to a shard another piece owns.
 * @param partials - each partial index's text, and the name to give it in messages
 * @returns the merged index's text
 * @throws FormatError naming the partial that is refused and why; InvalidInputError when none is given
 */
export function mergeShardIndexes(partials: ReadonlyArray<{ text: string; label: string }>): string {
  if (!Array.isArray(partials) || partials.length === 0) {
    throw new InvalidInputError('INVALID_ARGUMENT', 'mergeShardIndexes needs the partial index of every piece, got none.');
  }
  const pieces = partials.map(({ text, label }) => {
    const index = parseShardIndex(text, label);
    const record = index.entries.find(([key]) => key === SHARD_PIECE_KEY)?.[1];
    if (!isRecord(record)) {
      throw malformed(label, `it has no "${SHARD_PIECE_KEY}" record, so it is not the partial index of a piece of a split run (those are written with shard: "i/n")`);
    }
    const { index: pieceIndex, count, shards } = record;
    if (
      !(Number.isSafeInteger(count) && (count as number) >= 1 && Number.isSafeInteger(pieceIndex) && (pieceIndex as number) >= 0 && (pieceIndex as number) < (count as number)) ||
      !Array.isArray(shards) ||
      !shards.every((s) => typeof s === 'string' && badShardName(s) === null)
    ) {
      throw malformed(label, `its "${SHARD_PIECE_KEY}" record ${describeValue(record)} is not { index, count, shards }`);
    }
    // What every piece of one run shares: everything but the weight map, the size and the piece number.
    const common = JSON.stringify(
      index.entries.map(([key, value]) => [key, key === 'weight_map' ? null : key === 'metadata' ? { ...index.metadata, total_size: null } : key === SHARD_PIECE_KEY ? { count, shards } : value]),
    );
    return { label, index, piece: { index: pieceIndex as number, count: count as number }, shards: shards as string[], common };
  });
  const first = pieces[0]!;
  const byPiece = new Map<number, (typeof pieces)[number]>();
  for (const piece of pieces) {
    if (piece.common !== first.common) {
      throw new InvalidInputError(
        'INVALID_ARGUMENT',
        `${piece.label} and ${first.label} are pieces of different runs (their piece counts, shard lists or metadata differ); merge the pieces of one run.`,
      );
    }
    const twin = byPiece.get(piece.piece.index);
    if (twin) throw new InvalidInputError('INVALID_ARGUMENT', `${twin.label} and ${piece.label} are both piece ${piece.piece.index} of ${piece.piece.count}; give each piece once.`);
    byPiece.set(piece.piece.index, piece);
  }
  const missing = Array.from({ length: first.piece.count }, (_, i) => i).filter((i) => !byPiece.has(i));
  if (missing.length > 0) {
    throw new InvalidInputError(
      'INVALID_ARGUMENT',
      `piece${missing.length > 1 ? 's' : ''} ${missing.join(', ')} of ${first.piece.count} ${missing.length > 1 ? 'are' : 'is'} missing: merge the partial index of every piece.`,
    );
  }
  const weightMap = new Map<string, string>();
  let totalSize = 0;
  for (const piece of pieces) {
    const own = new Set(shardsOfPiece(piece.shards, piece.piece));
    for (const [tensor, shard] of piece.index.weightMap) {
      if (!own.has(shard)) {
        throw malformed(piece.label, `"weight_map" maps ${describeName(tensor)} to ${describeValue(shard)}, a shard that piece ${piece.piece.index} of ${piece.piece.count} does not process`);
      }
      if (weightMap.has(tensor)) throw malformed(piece.label, `${describeName(tensor)} is also in another piece's index (${describeValue(weightMap.get(tensor))})`);
      weightMap.set(tensor, shard);
    }
    totalSize += (piece.index.metadata.total_size as number | undefined) ?? 0;
  }
  return indexText(first.index.entries, first.index.metadata, weightMap, totalSize, null);
}
