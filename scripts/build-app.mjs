// Builds the static web app (app/) into dist/app/: the page and its worker bundled by esbuild,
// with the WebAssembly builds beside them. The folder is self-contained: serve it as plain files
// (GitHub Pages, a Worker's static assets, `npm run app`). Nothing is fetched from anywhere else.
import * as esbuild from 'esbuild';
import { copyFileSync, mkdirSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const fileReader = join(root, 'src/backends/wasm/file.js');
export const APP_DIR = join(root, 'dist/app');

/** Builds dist/app/ and returns its path. */
export async function buildApp() {
  mkdirSync(APP_DIR, { recursive: true });
  await esbuild.build({
    entryPoints: { main: join(root, 'app/main.ts'), worker: join(root, 'app/worker.ts') },
    outdir: APP_DIR,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    plugins: [
      {
        name: 'without-file-system',
        setup(build) {
          build.onResolve({ filter: /\/file\.js$/ }, (args) => (resolve(args.resolveDir, args.path) === fileReader ? { path: join(root, 'src/backends/wasm/file-web.ts') } : undefined));
        },
      },
    ],
    minify: true,
    sourcemap: true,
    logLevel: 'warning',
  });
  for (const file of ['index.html', 'style.css']) copyFileSync(join(root, 'app', file), join(APP_DIR, file));
  for (const file of readdirSync(join(root, 'build')).filter((f) => f.endsWith('.wasm'))) copyFileSync(join(root, 'build', file), join(APP_DIR, file));
  return APP_DIR;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  console.log(`built ${await buildApp()}`);
}
