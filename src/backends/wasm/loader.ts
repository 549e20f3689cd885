// Finding and compiling the two WebAssembly builds. Compiled modules are cached per build, so
// every backend after the first instantiates without recompiling. Each runtime entry
// (src/runtimes/) tells this module where its builds come from with useWasmSources.

import { BackendError } from '../../errors.js';
import { defaultWasmUrl, packageUrl } from '../build-url.js';
import { readWasmFile } from './file.js';

/** The two WebAssembly builds: with 128-bit SIMD, and without it for runtimes that lack it. */
export type WasmBuild = 'simd' | 'scalar';
/** Where a build comes from: a compiled module, its bytes, or a URL/path to fetch or read. */
export type WasmSource = WebAssembly.Module | ArrayBuffer | ArrayBufferView | URL | string;

// (module (func (result v128) (i32x4.splat (i32.const 0)))): validates only with SIMD.
const SIMD_PROBE = new Uint8Array([
  0x00,
  0x61,
  0x73,
  0x6d,
  0x01,
  0x00,
  0x00,
  0x00, // magic, version
  0x01,
  0x05,
  0x01,
  0x60,
  0x00,
  0x01,
  0x7b, // type section: () -> v128
  0x03,
  0x02,
  0x01,
  0x00, // function section
  0x0a,
  0x08,
  0x01,
  0x06,
  0x00,
  0x41,
  0x00,
  0xfd,
  0x11,
  0x0b, // code: i32.const 0; i32x4.splat
]);

/**
 * Whether this runtime's WebAssembly validates a SIMD instruction.
 * @returns True where the 'simd' build can run.
 */
export function runtimeHasSimd(): boolean {
  return typeof WebAssembly === 'object' && WebAssembly.validate(SIMD_PROBE);
}

const compiled = new Map<WasmBuild, Promise<WebAssembly.Module>>();
const registered: Partial<Record<WasmBuild, WasmSource>> = {};

/**
 * Where the builds come from when `createBackend` is not given `wasm`. Workers cannot compile
 * bytes, so their entry passes the modules their bundler compiled; the browser entry passes
 * URLs a bundler can follow. Replaces any module compiled from an earlier default.
 */
export function useWasmSources(sources: { simd?: WasmSource; scalar?: WasmSource }): void {
  for (const build of ['simd', 'scalar'] as const) {
    const source = sources[build];
    if (source === undefined) continue;
    registered[build] = source;
    compiled.delete(build);
  }
}

export function compileWasm(build: WasmBuild, source?: WasmSource): Promise<WebAssembly.Module> {
  if (source !== undefined) return compileSource(build, source);
  let module = compiled.get(build);
  if (!module) {
    module = compileSource(build, registered[build] ?? defaultWasmUrl(build));
    module.catch(() => compiled.delete(build));
    compiled.set(build, module);
  }
  return module;
}

function compileSource(build: WasmBuild, source: WasmSource): Promise<WebAssembly.Module> {
  return source instanceof WebAssembly.Module ? Promise.resolve(source) : compileFrom(build, source);
}

async function compileFrom(build: WasmBuild, source: ArrayBuffer | ArrayBufferView | URL | string): Promise<WebAssembly.Module> {
  try {
    if (source instanceof ArrayBuffer || ArrayBuffer.isView(source)) return await WebAssembly.compile(source as BufferSource);
    const url = typeof source === 'string' ? packageUrl(source) : source;
    if (url.protocol === 'file:') return await WebAssembly.compile(await readWasmFile(url));
    const response = await fetch(url);
    if (!response.ok) throw new Error(`HTTP ${response.status} for ${url.href}`);
    return await WebAssembly.compile(await response.arrayBuffer());
  } catch (cause) {
    throw new BackendError(
      'BACKEND_UNAVAILABLE',
      `could not load the ${build} WebAssembly build (${(cause as Error).message}); ` + `run "npm run build", or pass the module yourself: createBackend({ wasm: { ${build}: moduleOrBytes } }).`,
      { cause },
    );
  }
}
