// A small static file server on 127.0.0.1 (WebGPU needs a secure context, and localhost is
// one). Serves this checkout, so examples/browser can load dist/ and build/. The Chromium
// suite uses it too. Run directly: `npm run example:browser`.
import { createServer } from 'node:http';
import { createReadStream, statSync } from 'node:fs';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';

/** @type {Record<string, string>} */
const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.css': 'text/css; charset=utf-8',
};

/**
 * Serves `root`; `aliases` maps a URL path to a file outside it. Resolves to the base URL and
 * a function that stops the server.
 * @param {string} root the folder to serve
 * @param {{ port?: number, aliases?: Record<string, string> }} [options] port 0 picks a free one
 * @returns {Promise<{ url: string, close: () => Promise<void> }>}
 */
export function serveDirectory(root, { port = 0, aliases = {} } = {}) {
  const server = createServer((request, response) => {
    const requested = decodeURIComponent(new URL(request.url ?? '/', 'http://localhost').pathname);
    const path = requested.endsWith('/') ? `${requested}index.html` : requested;
    const file = aliases[path] ?? join(root, normalize(path).replace(/^([/\\]\.\.)+/, ''));
    let stat;
    try {
      stat = statSync(file);
    } catch {
      stat = null;
    }
    if (!stat?.isFile()) {
      response.writeHead(404, { 'content-type': 'text/plain' }).end(`not found: ${path}\n`);
      return;
    }
    response.writeHead(200, {
      'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
      'content-length': stat.size,
      'cache-control': 'no-store',
    });
    createReadStream(file).pipe(response);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      const { port: bound } = /** @type {import('node:net').AddressInfo} */ (server.address());
      resolve({ url: `http://127.0.0.1:${bound}`, close: () => new Promise((done) => server.close(() => done())) });
    });
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const checkout = fileURLToPath(new URL('..', import.meta.url));
  // `node scripts/serve.mjs [folder]`: the checkout (examples/browser), or a built folder such as dist/app.
  const root = process.argv[2] ? join(process.cwd(), process.argv[2]) : checkout;
  const { url } = await serveDirectory(root, { port: Number(process.env.PORT ?? 8080) });
  console.log(process.argv[2] ? `serving ${root} at ${url}/` : `serving ${root} at ${url}\nopen ${url}/examples/browser/ (add ?backend=webgpu|wasm-simd|wasm&bits=3 to choose)`);
}
