// Real pretrained tfjs models that nobody here wrote, run on real inputs, all shipped in one npm
// package: @vladmandic/human (MIT). The main model is its facial-expression classifier
// (`models/emotion.json` + `emotion.bin`, a tfjs graph model converted from oarriaga's
// face_classification mini-Xception: 64×64 grayscale face → 7 softmax probabilities); the second
// its face description model (`faceres.json`, below). The inputs are the faces in the gallery of
// the package's own screenshot `assets/screenshot-facematch.jpg`: a grid of real photographs'
// face crops, each a square cell between dark bands. Nothing here decides which label is right;
// the tests compare a quantized model's outputs with the float model's on the same faces.
//
// The tf namespace is a parameter, so the same code runs under vitest and in the bench script
// (which imports this file transpiled) with whichever tfjs backend the caller set.

import { readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type * as tfjs from '@tensorflow/tfjs';
import jpeg from 'jpeg-js';

type Tf = typeof tfjs;

/** The package the model and the images come from, as the README names it. */
export const REAL_MODEL_PACKAGE = '@vladmandic/human';

/** The classifier's outputs in order (human's own label list for this model). */
export const EMOTION_LABELS = ['angry', 'disgust', 'fear', 'happy', 'sad', 'surprise', 'neutral'] as const;

/** The package's folder. Its exports map hides package.json, so it is found from the Node entry point (dist/…). */
export function humanPackageDir(): string {
  return dirname(dirname(createRequire(import.meta.url).resolve(REAL_MODEL_PACKAGE)));
}

/** The float model's model.json. */
export function emotionModelPath(): string {
  return join(humanPackageDir(), 'models', 'emotion.json');
}

/**
 * The package's face description model (HSE-asavchenko's face recognition network, a MobileNet:
 * 224×224 RGB face → gender probability, 100 age probabilities, a 1024-value descriptor), 7 MB
 * with its weights stored as float16: a larger model, and tfjs's own float16 quantization read in.
 */
export function faceresModelPath(): string {
  return join(humanPackageDir(), 'models', 'faceres.json');
}

/** Bytes a server would host for the model at `modelJsonPath`: the JSON and every file its manifest names. */
export function modelFolderBytes(modelJsonPath: string): { json: number; weights: number; total: number } {
  const model = JSON.parse(readFileSync(modelJsonPath, 'utf8')) as { weightsManifest: { paths: string[] }[] };
  const json = statSync(modelJsonPath).size;
  const weights = model.weightsManifest.flatMap((group) => group.paths).reduce((sum, path) => sum + statSync(join(dirname(modelJsonPath), path)).size, 0);
  return { json, weights, total: json + weights };
}

/**
 * A model folder read into tfjs artifacts by hand (JSON.parse and readFileSync), the way any
 * stock loader would see it: the reference the handler's output is compared with.
 */
export function readModelArtifacts(modelJsonPath: string): tfjs.io.ModelArtifacts {
  const { weightsManifest, ...rest } = JSON.parse(readFileSync(modelJsonPath, 'utf8')) as tfjs.io.ModelJSON;
  const shards = weightsManifest.flatMap((group) => group.paths).map((path) => readFileSync(join(dirname(modelJsonPath), path)));
  const weightData = new Uint8Array(shards.reduce((sum, shard) => sum + shard.byteLength, 0));
  let offset = 0;
  for (const shard of shards) {
    weightData.set(shard, offset);
    offset += shard.byteLength;
  }
  return { ...rest, weightSpecs: weightsManifest.flatMap((group) => group.weights), weightData: weightData.buffer };
}

export interface GalleryFaces {
  /** The screenshot, RGB. */
  image: { width: number; height: number; rgb: Uint8Array };
  /** Each face's square in pixels, row by row. */
  faces: { x: number; y: number; size: number }[];
}

// The gallery's cells carry small captions (a similarity score at the top, age and gender at the
// bottom); the crops leave those margins out so that the model sees faces, not text.
const CAPTION_TOP = 16;
const CAPTION_BOTTOM = 14;
// A row of pixels darker than this on average is a band between gallery rows (the cells' own
// rows average around 100 of 255).
const BAND_LUMINANCE = 25;
// The gallery's rows are the run of equally tall bright stretches at the bottom of the screenshot;
// above them the caption line and the sample strip differ in height.
const MIN_CELL = 90;
const MAX_CELL = 130;

/** Decodes the screenshot and finds its gallery: rows between dark bands, square cells across the full width. */
export function galleryFaces(): GalleryFaces {
  const decoded = jpeg.decode(readFileSync(join(humanPackageDir(), 'assets', 'screenshot-facematch.jpg')), { useTArray: true });
  const { width, height } = decoded;
  const rgb = new Uint8Array(width * height * 3);
  for (let p = 0; p < width * height; p++) rgb.set(decoded.data.subarray(p * 4, p * 4 + 3), p * 3);

  const bright: boolean[] = [];
  for (let y = 0; y < height; y++) {
    let sum = 0;
    for (let i = y * width * 3; i < (y + 1) * width * 3; i++) sum += rgb[i]!;
    bright.push(sum / (width * 3) >= BAND_LUMINANCE);
  }
  const runs: { top: number; size: number }[] = [];
  for (let y = 0; y < height; y++) {
    if (!bright[y]) continue;
    const top = y;
    while (y < height && bright[y]) y++;
    runs.push({ top, size: y - top });
  }
  const rows: { top: number; size: number }[] = [];
  for (let r = runs.length - 1; r >= 0 && runs[r]!.size >= MIN_CELL && runs[r]!.size <= MAX_CELL; r--) rows.unshift(runs[r]!);
  if (rows.length === 0) throw new Error(`no face gallery found in ${REAL_MODEL_PACKAGE}'s screenshot-facematch.jpg (has the asset changed?)`);

  const cell = Math.round(rows.reduce((sum, row) => sum + row.size, 0) / rows.length);
  const columns = Math.round(width / cell);
  const faces: GalleryFaces['faces'] = [];
  for (const row of rows) {
    const size = row.size - CAPTION_TOP - CAPTION_BOTTOM;
    for (let c = 0; c < columns; c++) {
      const left = Math.round((c * width) / columns);
      faces.push({ x: left + Math.round((width / columns - size) / 2), y: row.top + CAPTION_TOP, size });
    }
  }
  return { image: { width, height, rgb }, faces };
}

/** Every face's crop resized to `size`×`size` (bilinear), RGB in [0, 1]. */
function faceCrops(tf: Tf, gallery: GalleryFaces, size: number): tfjs.Tensor4D {
  const { width, height, rgb } = gallery.image;
  return tf.tidy(() => {
    const image = tf.tensor4d(rgb, [1, height, width, 3], 'int32').toFloat().div(255) as tfjs.Tensor4D;
    const boxes = gallery.faces.map(({ x, y, size: side }) => [y / (height - 1), x / (width - 1), (y + side - 1) / (height - 1), (x + side - 1) / (width - 1)]);
    return tf.image.cropAndResize(
      image,
      boxes,
      gallery.faces.map(() => 0),
      [size, size],
      'bilinear',
    );
  });
}

/**
 * The classifier's input for every face, prepared as human prepares it: the crop at 64×64,
 * grayscale with ITU-R 601 weights, mapped from [0, 1] to [-1, 1].
 */
export function emotionInput(tf: Tf, gallery: GalleryFaces): tfjs.Tensor4D {
  return tf.tidy(() => {
    const gray = faceCrops(tf, gallery, 64)
      .mul(tf.tensor1d([0.2989, 0.587, 0.114]))
      .sum(3, true);
    return gray.sub(0.5).mul(2) as tfjs.Tensor4D;
  });
}

/** The description model's input, prepared as human prepares it: the crop at 224×224, pixels in [0, 255]. */
export function faceresInput(tf: Tf, gallery: GalleryFaces): tfjs.Tensor4D {
  return tf.tidy(() => faceCrops(tf, gallery, 224).mul(255) as tfjs.Tensor4D);
}

/** A loaded graph or layers model: both predict. */
export interface Predictor {
  predict(input: tfjs.Tensor): tfjs.Tensor | tfjs.Tensor[] | tfjs.NamedTensorMap;
}

/** One row of probabilities per face. */
export async function classify(tf: Tf, model: Predictor, input: tfjs.Tensor4D): Promise<Float32Array[]> {
  const output = tf.tidy(() => {
    const result = model.predict(input);
    // The classifier has one output, however the model type hands it back.
    if (Array.isArray(result)) return result[0]!;
    return result instanceof tf.Tensor ? result : Object.values(result)[0]!;
  });
  try {
    const values = await output.data();
    const classes = output.shape[1]!;
    return Array.from({ length: output.shape[0]! }, (_, i) => Float32Array.from(values.subarray(i * classes, (i + 1) * classes)));
  } finally {
    output.dispose();
  }
}

/** The index of the largest probability. */
export function top1(probabilities: Float32Array): number {
  return probabilities.reduce((best, p, i) => (p > probabilities[best]! ? i : best), 0);
}

export interface Agreement {
  /** Faces whose top-1 label equals the reference's. */
  sameTop1: number;
  faces: number;
  /** The largest |p − p_reference| over every face and label. */
  maxAbsDiff: number;
  /** The mean of |p − p_reference| over every face and label. */
  meanAbsDiff: number;
}

/** How closely `outputs` follow `reference`, face by face. */
export function agreement(reference: readonly Float32Array[], outputs: readonly Float32Array[]): Agreement {
  if (reference.length !== outputs.length) throw new Error(`${outputs.length} outputs for ${reference.length} reference faces`);
  let sameTop1 = 0;
  let maxAbsDiff = 0;
  let sum = 0;
  let count = 0;
  reference.forEach((expected, i) => {
    const actual = outputs[i]!;
    if (top1(actual) === top1(expected)) sameTop1++;
    expected.forEach((p, k) => {
      const diff = Math.abs(actual[k]! - p);
      maxAbsDiff = Math.max(maxAbsDiff, diff);
      sum += diff;
      count++;
    });
  });
  return { sameTop1, faces: reference.length, maxAbsDiff, meanAbsDiff: sum / count };
}

export interface FaceDescriptions {
  /** The probability that the face is male, per face. */
  male: Float32Array;
  /** The age the 100 age probabilities give on average (Σ age × p), per face. */
  age: Float32Array;
  /** Each face's 1024-value descriptor. */
  descriptors: Float32Array[];
}

/** Runs the description model; its three outputs are told apart by width, as human does. */
export async function describeFaces(tf: Tf, model: { execute(input: tfjs.Tensor): tfjs.Tensor | tfjs.Tensor[] }, input: tfjs.Tensor4D): Promise<FaceDescriptions> {
  const outputs = [model.execute(input)].flat();
  try {
    const byWidth = async (width: number) => {
      const output = outputs.find((t) => t.shape[1] === width);
      if (!output) throw new Error(`the description model has no output of width ${width} (got ${outputs.map((t) => `[${t.shape}]`).join(', ')})`);
      return output.data() as Promise<Float32Array>;
    };
    const [male, ages, descriptors] = [await byWidth(1), await byWidth(100), await byWidth(1024)];
    const faces = male.length;
    const age = Float32Array.from({ length: faces }, (_, i) => ages.subarray(i * 100, (i + 1) * 100).reduce((sum, p, years) => sum + p * years, 0));
    return { male: Float32Array.from(male), age, descriptors: Array.from({ length: faces }, (_, i) => descriptors.slice(i * 1024, (i + 1) * 1024)) };
  } finally {
    tf.dispose(outputs);
  }
}

export interface DescriptionAgreement {
  /** Faces whose gender (p > 0.5) equals the reference's. */
  sameGender: number;
  faces: number;
  meanAgeDiff: number;
  maxAgeDiff: number;
  /** Cosine similarity of each face's descriptor with the reference's: the mean and the worst. */
  meanCosine: number;
  minCosine: number;
}

/** How closely `outputs` follow `reference`, face by face. */
export function descriptionAgreement(reference: FaceDescriptions, outputs: FaceDescriptions): DescriptionAgreement {
  const faces = reference.male.length;
  if (outputs.male.length !== faces) throw new Error(`${outputs.male.length} outputs for ${faces} reference faces`);
  let sameGender = 0;
  let ageSum = 0;
  let maxAgeDiff = 0;
  let cosineSum = 0;
  let minCosine = 1;
  for (let i = 0; i < faces; i++) {
    if (reference.male[i]! > 0.5 === outputs.male[i]! > 0.5) sameGender++;
    const ageDiff = Math.abs(reference.age[i]! - outputs.age[i]!);
    ageSum += ageDiff;
    maxAgeDiff = Math.max(maxAgeDiff, ageDiff);
    const cosine = cosineSimilarity(reference.descriptors[i]!, outputs.descriptors[i]!);
    cosineSum += cosine;
    minCosine = Math.min(minCosine, cosine);
  }
  return { sameGender, faces, meanAgeDiff: ageSum / faces, maxAgeDiff, meanCosine: cosineSum / faces, minCosine };
}

function cosineSimilarity(a: Float32Array, b: Float32Array): number {
  let dot = 0;
  let aa = 0;
  let bb = 0;
  a.forEach((x, k) => {
    dot += x * b[k]!;
    aa += x * x;
    bb += b[k]! * b[k]!;
  });
  return dot / Math.sqrt(aa * bb);
}
