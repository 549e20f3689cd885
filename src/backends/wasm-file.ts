// Reads a WebAssembly build from a file: URL (Node, Deno). Imported lazily so that nothing here
// is loaded where there is no file system; the web bundles replace this module with
// wasm-file-web.ts (scripts/bundle.mjs) so that browser bundlers never see `node:fs`.

export async function readWasmFile(url: URL): Promise<BufferSource> {
  const fs = await import('node:fs/promises');
  return fs.readFile(url);
}
