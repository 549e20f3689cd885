// file.ts for browsers and Workers, which have no file system to read a file: URL from.

import { BackendError } from '../../errors.js';

export async function readWasmFile(url: URL): Promise<BufferSource> {
  throw new BackendError('BACKEND_UNAVAILABLE', `${url.href} is a file: URL, and this runtime has no file system; serve the .wasm over http(s) or pass the module itself.`);
}

export async function readLocalFile(location: URL | string): Promise<Uint8Array> {
  throw new BackendError('BACKEND_UNAVAILABLE', `${String(location)} names a local file, and this runtime has no file system; give a URL to fetch, or the files' bytes.`);
}
