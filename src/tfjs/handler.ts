// A tfjs IOHandler that loads a packed model (src/formats/tfjs/) where tfjs loads models:
// `tf.loadGraphModel(packedModel(url))`, `tf.loadLayersModel(packedModel(url))`. What crosses
// the network is the packed weights file; the weights are unpacked here, on WebAssembly (or on
// the GPUDevice given, such as tfjs's own WebGPU device), and handed to tfjs as float weights.
// A plain tfjs model loads through it too, so an app can switch between them by URL.

import type * as tf from '@tensorflow/tfjs';
import { readLocalFile } from '../backends/wasm/file.js';
import { runtimeHasSimd, type WasmSource } from '../backends/wasm/loader.js';
import { describeValue } from '../describe.js';
import { EdgeMoqError, InvalidInputError } from '../errors.js';
import { plainArtifacts, unpackModel, type ArtifactsLike } from '../formats/tfjs/artifacts.js';
import { checkTfjsModel, isPackedTfjsModel, parseTfjsModel, type TfjsModelJson } from '../formats/tfjs/model-json.js';
import { memorySource } from '../formats/safetensors.js';
import { createPacker } from '../packed/index.js';
import type { Packer } from '../packed/packer.js';

/** A model in memory: its model.json (text or parsed) and its files' bytes by manifest path. */
export interface ModelFiles {
  modelJson: string | object;
  /** A packed model's weights file (its manifest names one file). */
  weights?: Uint8Array | ArrayBuffer;
  /** Files by the paths the manifest gives (a plain model's shards, or a packed model's weights file). */
  files?: Readonly<Record<string, Uint8Array | ArrayBuffer>>;
}

/**
 * Where the model is: a URL (string or URL; fetched, shard paths resolved against it), a file
 * path or file: URL (Node, Deno), or the files in memory.
 */
export type ModelSource = string | URL | ModelFiles;

/** Where packedModel unpacks and how it fetches. */
export interface PackedModelOptions {
  /** Unpacks on this packer (kept open). Default: a WebAssembly packer, disposed after loading. */
  packer?: Packer;
  /** Unpack on this WebGPU device instead (e.g. tfjs's: `(tf.backend() as WebGPUBackend).device`). */
  device?: GPUDevice;
  /** Where the WebAssembly builds are (default: next to the package's JavaScript). */
  wasm?: { simd?: WasmSource; scalar?: WasmSource };
  /** The fetch to use (default globalThis.fetch), e.g. one that adds credentials. */
  fetch?: typeof fetch;
  /** Passed to every fetch. */
  requestInit?: RequestInit;
}

/** The IOHandler tf.loadGraphModel and tf.loadLayersModel take (load only). */
export interface ModelLoader extends tf.io.IOHandler {
  /** Reads model.json and its weights, unpacking the packed ones to float32. */
  load(): Promise<tf.io.ModelArtifacts>;
}

/**
 * An IOHandler for `tf.loadGraphModel` / `tf.loadLayersModel` reading a packed (or plain) tfjs model.
 * @param source A URL of model.json, or the files in memory.
 * @param options Where to unpack, and how to fetch.
 * @returns The handler to pass to tf.loadGraphModel or tf.loadLayersModel.
 */
export function packedModel(source: ModelSource, options: PackedModelOptions = {}): ModelLoader {
  const files = filesOf(source, options);
  return { load: async () => (await loadArtifacts(files, options)) as tf.io.ModelArtifacts };
}

async function loadArtifacts(files: Files, options: PackedModelOptions): Promise<ArtifactsLike> {
  const model = await files.model();
  if (!isPackedTfjsModel(model)) {
    const shards = new Map<string, Uint8Array>();
    for (const path of model.weightsManifest.flatMap((g) => g.paths)) shards.set(path, await files.read(path));
    return plainArtifacts(model, shards);
  }
  const weights = await files.read(model.weightsManifest[0]!.paths[0]!);
  const packer = options.packer ?? (await defaultPacker(options));
  try {
    return await unpackModel(model, memorySource(weights), packer);
  } finally {
    if (!options.packer) packer.dispose();
  }
}

async function defaultPacker(options: PackedModelOptions): Promise<Packer> {
  const wasm = options.wasm ? { wasm: options.wasm } : {};
  if (options.device) return createPacker('webgpu', { device: options.device, ...wasm });
  return createPacker(runtimeHasSimd() ? 'wasm-simd' : 'wasm', wasm);
}

interface Files {
  model(): Promise<TfjsModelJson>;
  read(path: string): Promise<Uint8Array>;
}

function filesOf(source: ModelSource, options: PackedModelOptions): Files {
  if (typeof source === 'object' && source !== null && !(source instanceof URL)) return memoryFiles(source);
  if (typeof source !== 'string' && !(source instanceof URL)) {
    throw new InvalidInputError('INVALID_ARGUMENT', `packedModel takes a URL, a file path or { modelJson, weights }, got ${describeValue(source)}.`);
  }
  const text = String(source);
  // Two letters at least: `C:\models\model.json` is a Windows path, not a URL of scheme c.
  const hasScheme = /^[a-z][a-z0-9+.-]+:/i.test(text);
  const inNode = typeof process === 'object' && typeof process.versions?.node === 'string';
  if ((!hasScheme && inNode) || text.startsWith('file:')) return localFiles(text);
  return fetchedFiles(text, options);
}

function memoryFiles(source: ModelFiles): Files {
  const bytes = (value: unknown, what: string): Uint8Array => {
    if (value instanceof Uint8Array) return value;
    if (value instanceof ArrayBuffer) return new Uint8Array(value);
    throw new InvalidInputError('INVALID_ARGUMENT', `${what} must be a Uint8Array or an ArrayBuffer, got ${describeValue(value)}.`);
  };
  return {
    async model() {
      const { modelJson } = source;
      return typeof modelJson === 'string' ? parseTfjsModel(modelJson, 'modelJson') : checkTfjsModel(modelJson, 'modelJson');
    },
    async read(path) {
      const file = source.files?.[path] ?? (source.weights !== undefined && !source.files ? source.weights : undefined);
      if (file === undefined) throw new InvalidInputError('INVALID_ARGUMENT', `the manifest names "${path}", which the files given do not include.`);
      return bytes(file, `the file "${path}"`);
    },
  };
}

function localFiles(location: string): Files {
  const base = location.startsWith('file:') ? new URL(location) : location;
  const folderEnd = (path: string) => Math.max(path.lastIndexOf('/'), path.lastIndexOf('\\')) + 1;
  const sibling = (path: string) => (base instanceof URL ? inFolder(base, path) : `${base.slice(0, folderEnd(base))}${path}`);
  const read = async (at: URL | string) => {
    try {
      return await readLocalFile(at);
    } catch (error) {
      if (error instanceof EdgeMoqError) throw error;
      throw new EdgeMoqError('IO', `cannot read ${String(at)}: ${(error as Error).message}`, { cause: error });
    }
  };
  return {
    model: async () => parseTfjsModel(await read(base), String(base)),
    read: (path) => read(sibling(path)),
  };
}

function fetchedFiles(url: string, options: PackedModelOptions): Files {
  const fetcher = options.fetch ?? globalThis.fetch;
  if (typeof fetcher !== 'function') throw new InvalidInputError('INVALID_ARGUMENT', 'this runtime has no fetch: pass options.fetch, or the files in memory.');
  let base: URL;
  try {
    base = new URL(url, (globalThis as { location?: { href: string } }).location?.href);
  } catch (error) {
    throw new InvalidInputError('INVALID_ARGUMENT', `${JSON.stringify(url)} is not a URL this runtime can resolve (a relative URL needs a page): give an absolute URL, or the files in memory.`, {
      cause: error,
    });
  }
  const get = async (at: URL) => {
    try {
      const response = await fetcher(at.href, options.requestInit);
      if (!response.ok) throw new EdgeMoqError('IO', `fetching ${at.href} failed: HTTP ${response.status} ${response.statusText}`);
      return new Uint8Array(await response.arrayBuffer());
    } catch (error) {
      if (error instanceof EdgeMoqError) throw error;
      throw new EdgeMoqError('IO', `fetching ${at.href} failed: ${(error as Error)?.message ?? String(error)}`, { cause: error });
    }
  };
  return {
    model: async () => parseTfjsModel(await get(base), base.href),
    read: (path) => get(inFolder(base, path)),
  };
}

/**
 * `path` resolved against the model.json's URL, which must stay in its folder: the manifest's
 * paths are checked already (model-json.ts); this holds the resolution itself to it too.
 */
function inFolder(base: URL, path: string): URL {
  const target = new URL(path, base);
  const folder = new URL('.', base);
  if (target.origin !== folder.origin || !target.pathname.startsWith(folder.pathname)) {
    throw new InvalidInputError('INVALID_ARGUMENT', `the manifest path ${JSON.stringify(path)} resolves to ${target.href}, outside the model's folder ${folder.href}.`);
  }
  return target;
}
