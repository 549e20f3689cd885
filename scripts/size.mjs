// The size budget: each WebAssembly build ≤ 32 KB and the JavaScript of each runtime's bundle
// ≤ 75 KB minified (gzip reported too). Small is why edge-moq fits where onnxruntime-web's
// 12–26 MB of WebAssembly does not (a Worker's upload limit). Exits 1 over budget. The budget
// was 60 KB until the data-safety work (issue 13) added 12.5 KB that every entry needs: the
// linear-time name matcher (4.6 KB), the value formatter that is safe on hostile values
// (2.5 KB), freed-view tracking and complete state validation (about 5 KB).
import * as esbuild from 'esbuild';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { bundleOptions, bundles } from './bundle.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const KB = 1024;
const WASM_BUDGET = 32 * KB;
const JS_BUDGET = 75 * KB;

const rows = [];
for (const build of ['simd', 'scalar']) {
  const bytes = readFileSync(`${root}build/edge-moq-${build}.wasm`);
  rows.push({ what: `build/edge-moq-${build}.wasm`, bytes: bytes.length, gzip: gzipSync(bytes).length, budget: WASM_BUDGET });
}
for (const bundle of bundles) {
  const result = await esbuild.build({ ...bundleOptions(bundle), minify: true, write: false, outfile: `${bundle.name}.min.js` });
  const [output] = result.outputFiles ?? [];
  if (!output) throw new Error(`esbuild wrote no output for the ${bundle.name} bundle`);
  const bytes = output.contents;
  rows.push({ what: `dist/bundles/${bundle.name}.js, minified`, bytes: bytes.length, gzip: gzipSync(bytes).length, budget: JS_BUDGET });
}

const kb = (/** @type {number} */ n) => `${(n / KB).toFixed(1)} KB`;
const width = Math.max(...rows.map((r) => r.what.length));
console.log(`${'file'.padEnd(width)}  ${'size'.padStart(9)}  ${'gzip'.padStart(9)}  ${'budget'.padStart(9)}`);
for (const r of rows) {
  const verdict = r.bytes <= r.budget ? 'ok' : 'OVER BUDGET';
  console.log(`${r.what.padEnd(width)}  ${kb(r.bytes).padStart(9)}  ${kb(r.gzip).padStart(9)}  ${kb(r.budget).padStart(9)}  ${verdict}`);
}
const over = rows.filter((r) => r.bytes > r.budget);
if (over.length) {
  console.error(`over the size budget: ${over.map((r) => r.what).join(', ')}`);
  process.exit(1);
}
