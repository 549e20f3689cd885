// Reads files from the local file system (Node, Deno): the WebAssembly builds, and models named
// by path (src/tfjs/handler.ts). Imported lazily so that nothing here is loaded where there is
// no file system; the web bundles replace this module with file-web.ts
// (scripts/bundle.mjs) so that browser bundlers never see `node:fs`.

export async function readWasmFile(url: URL): Promise<BufferSource> {
  const fs = await import('node:fs/promises');
  return fs.readFile(url);
}

/**
 * A regular file's bytes, by file: URL or by path (relative to the working directory). Anything
 * else is refused before it is read: a FIFO would block the read forever.
 */
export async function readLocalFile(location: URL | string): Promise<Uint8Array> {
  const fs = await import('node:fs/promises');
  const file = await fs.open(location, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  try {
    if (!(await file.stat()).isFile()) throw new Error('not a regular file');
    return new Uint8Array(await file.readFile());
  } finally {
    await file.close();
  }
}
