// The messages between the page (app/main.ts) and the quantization worker (app/worker.ts). One
// job at a time per worker; every reply carries the id of the request it answers.

import type { Recipe } from '../src/formats/recipe.js';

/** The formats the page opens, told apart by content (src/formats/detect-format.ts). */
export type ModelFormat = 'safetensors' | 'safetensors-index' | 'onnx' | 'tfjs';

/** What the user chose; the defaults are the CLI's (full grid, one group per row / per channel). */
export interface AppOptions {
  bits: number;
  groupSize?: number;
  type?: 'symmetric' | 'asymmetric';
  grid?: 'full' | 'deepspeed';
  axis?: number;
  recipe?: Recipe;
  include?: string;
  exclude?: string;
}

export type BackendChoice = 'auto' | 'webgpu' | 'wasm-simd' | 'wasm';

/** One tensor of the opened model, for the table and the recipe preview. */
export interface TensorInfoRow {
  name: string;
  shape: number[];
  dtype: string;
  bytes: number;
}

/** One row of the result: the CLI's summary row. */
export interface ResultRow {
  name: string;
  shape: readonly number[];
  dtype: string;
  packed: boolean;
  /** "symmetric 4-bit, groups of 32" or "kept: <reason>". */
  packedAs: string;
  bytesIn: number;
  bytesOut: number;
  maxAbsError?: number;
  rmsError?: number;
}

export type Request =
  /** Reads the model's structure (no quantization): format, entry file, tensors. */
  | { type: 'open'; id: number; files: File[] }
  | { type: 'quantize'; id: number; files: File[]; options: AppOptions; backend: BackendChoice }
  /** Stops the running job: its partial outputs are discarded; the worker stays usable. */
  | { type: 'cancel'; id: number }
  /** Before/after histogram of one tensor of the last quantize job (bins over the input's range). */
  | { type: 'histogram'; id: number; tensor: string; bins: number };

export type Reply =
  | { type: 'opened'; id: number; format: ModelFormat; entry: string; tensors: TensorInfoRow[]; bytes: number }
  | { type: 'progress'; id: number; tensor: string; index: number; count: number; bytesDone: number; bytesTotal: number }
  | {
      type: 'done';
      id: number;
      rows: ResultRow[];
      /** The files to download, named as the CLI would name them (model.q4.onnx, shards and index, ...). */
      outputs: { name: string; file: Blob }[];
      /** Which backend ran, and why (createBackend's explain()). */
      backend: { kind: string; explain: string };
      bytesIn: number;
      bytesOut: number;
      milliseconds: number;
      warnings: string[];
    }
  | { type: 'histogram'; id: number; tensor: string; edges: number[]; before: number[]; after: number[] }
  | { type: 'cancelled'; id: number }
  /** A typed error (EdgeMoqError code) or 'INTERNAL', with a message for the page. */
  | { type: 'error'; id: number; code: string; message: string };
