// Hostile packed tfjs models through packedModel(): a seeded campaign edits the model.json (any
// field replaced by an edge value or removed) or the weights file (bytes overwritten, the file
// cut). The contract: load() either rejects with an EdgeMoqError whose message says something,
// promptly, or resolves to artifacts whose weight data is exactly as long as the specs say, so
// tfjs never decodes past or short of its buffer. FUZZ_RUNS scales the campaign up.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EdgeMoqError, FormatError } from '../src/errors.js';
import { createPacker } from '../src/packed/index.js';
import type { Packer } from '../src/packed/packer.js';
import { packedModel } from '../src/tfjs/handler.js';
import { runCli } from './support/cli.js';
import { FUZZ_SEED, FUZZ_TIMEOUT_MS, fuzzRuns, HANG_MS } from './support/fuzz.js';
import { convModel, everyKindOfWeight, saveLayersModel, writeManifestModel } from './support/tfjs-models.js';

let root: string;
let packer: Packer;
const models: { json: string; weights: Uint8Array }[] = [];

beforeAll(async () => {
  await tf.setBackend('cpu');
  packer = await createPacker('wasm-simd');
  root = mkdtempSync(join(tmpdir(), 'edge-moq-tfjs-hostile-'));
  const layers = await saveLayersModel(tf, convModel(tf), join(root, 'layers'));
  const kinds = writeManifestModel(join(root, 'kinds'), everyKindOfWeight());
  for (const [name, input, flags] of [
    ['a', layers.json, ['--bits', '4']],
    ['b', kinds.json, ['--bits', '3', '--type', 'asymmetric']],
  ] as const) {
    const out = join(root, name);
    const result = await runCli(['quantize', input, '-o', join(out, 'model.json'), '--quiet', ...flags]);
    expect(result.code, result.stderr).toBe(0);
    models.push({ json: readFileSync(join(out, 'model.json'), 'utf8'), weights: new Uint8Array(readFileSync(join(out, 'model.moq.safetensors'))) });
  }
});
afterAll(() => {
  packer.dispose();
  rmSync(root, { recursive: true, force: true });
});

/** xorshift32: the campaign replays from its seed. */
function random(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 2 ** 32;
  };
}

const EDGES: unknown[] = [null, -1, 0, 1.5, 2 ** 53, 1e21, '', 'x', 'float16', 'edge-moq', '__proto__', [], [-1], [2 ** 31, 2 ** 31], {}, { dtype: 'uint8' }, true];

/** Every path to a value inside `value`. */
function paths(value: unknown, at: (string | number)[] = [], out: (string | number)[][] = []): (string | number)[][] {
  if (at.length > 0) out.push(at);
  if (Array.isArray(value)) value.forEach((v, i) => paths(v, [...at, i], out));
  else if (value !== null && typeof value === 'object') for (const [k, v] of Object.entries(value)) paths(v, [...at, k], out);
  return out;
}

function edit(json: Record<string, unknown>, next: () => number): string {
  const all = paths(json);
  const path = all[Math.floor(next() * all.length)]!;
  let parent: any = json;
  for (const key of path.slice(0, -1)) parent = parent[key];
  const key = path.at(-1)!;
  if (next() < 0.2 && !Array.isArray(parent)) delete parent[key];
  else parent[key] = structuredClone(EDGES[Math.floor(next() * EDGES.length)]);
  return `${path.join('.')}`;
}

const BYTES: Readonly<Record<string, number>> = { float32: 4, int32: 4, bool: 1, complex64: 8, uint8: 1, uint16: 2, float16: 2 };

/** The bytes tfjs will read for `specs` from `data` (strings walked as tfjs walks them). */
function expectedBytes(specs: tf.io.WeightsManifestEntry[], data: Uint8Array): number {
  let at = 0;
  for (const spec of specs) {
    const size = spec.shape.reduce((a, b) => a * b, 1);
    if (spec.dtype === 'string' && !spec.quantization) {
      for (let i = 0; i < size; i++) at += 4 + new DataView(data.buffer, data.byteOffset + at, 4).getUint32(0, true);
    } else {
      at += size * BYTES[spec.quantization?.dtype ?? spec.dtype]!;
    }
  }
  return at;
}

describe('hostile packed tfjs models', () => {
  it('load() rejects with a typed error or gives weight data exactly as long as its specs', { timeout: FUZZ_TIMEOUT_MS }, async () => {
    const next = random(FUZZ_SEED);
    const runs = fuzzRuns(400);
    const outcomes = new Map<string, number>();
    for (let run = 0; run < runs; run++) {
      const base = models[run % models.length]!;
      const json = JSON.parse(base.json) as Record<string, unknown>;
      let weights = base.weights;
      let change: string;
      if (next() < 0.6) {
        change = `json ${edit(json, next)}`;
      } else {
        weights = weights.slice();
        const cut = next() < 0.3;
        if (cut) weights = weights.subarray(0, Math.floor(next() * weights.length));
        else for (let i = 0; i < 1 + Math.floor(next() * 4); i++) weights[Math.floor(next() * weights.length)] = Math.floor(next() * 256);
        change = cut ? 'weights cut' : 'weights bytes';
      }
      const started = performance.now();
      const outcome = await packedModel({ modelJson: JSON.stringify(json), weights }, { packer })
        .load()
        .then(
          (artifacts) => {
            const data = new Uint8Array(artifacts.weightData as ArrayBuffer);
            expect(expectedBytes(artifacts.weightSpecs!, data), `run ${run}: ${change}`).toBe(data.length);
            return 'loaded';
          },
          (error: unknown) => {
            // A damaged file is a FormatError, whatever was damaged: no other kind of error passes.
            expect(error, `run ${run}: ${change}: ${String(error)}`).toBeInstanceOf(FormatError);
            expect((error as EdgeMoqError).code, `run ${run}: ${change}`).toBe('MALFORMED_FILE');
            expect((error as Error).message.length).toBeGreaterThan(20);
            return (error as EdgeMoqError).code;
          },
        );
      expect(performance.now() - started, `run ${run}: ${change}`).toBeLessThan(HANG_MS);
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    }
    console.log(`fuzz tfjs-packed: ${runs} models (seed ${FUZZ_SEED}): ${[...outcomes].map(([k, n]) => `${k} ${n}`).join(', ')}`);
    expect(outcomes.get('MALFORMED_FILE')).toBeGreaterThan(0);
    expect(outcomes.get('loaded'), 'some damages leave a model that loads').toBeGreaterThan(0);
  });
});
