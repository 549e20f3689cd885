// Builds (npm run build) when an output is missing or older than its sources, so `npm test`,
// `npm start` and `npm run bench` work on a fresh clone without a separate build step.
import { execSync } from 'node:child_process';
import { readdirSync, statSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { staleOutputs } from './generate-interface.mjs';

const root = new URL('..', import.meta.url).pathname;
/** @type {(path: string) => number} */
const newest = (path) => {
  const s = statSync(path);
  if (!s.isDirectory()) return s.mtimeMs;
  return Math.max(0, ...readdirSync(path).map((e) => newest(join(path, e))));
};
/** @param {string[]} paths */
const newestOf = (paths) =>
  Math.max(
    ...paths
      .map((p) => join(root, p))
      .filter(existsSync)
      .map(newest),
  );

// The kernel interface first: its outputs are sources of everything below, and are rewritten only
// when scripts/kernel-interface.mjs (or the generator) says something new.
const writeInterface = () => {
  for (const [path, text] of staleOutputs()) writeFileSync(join(root, path), text);
};
writeInterface();

// Each output and what it is made from.
const targets = [
  [
    ['build/edge-moq-simd.wasm', 'build/edge-moq-scalar.wasm'],
    ['assembly', 'asconfig.json'],
  ],
  [['src/backends/webgpu/shaders.generated.ts'], ['shaders', 'scripts/embed-shaders.mjs']],
  [
    ['dist/index.js', 'dist/cli/main.js'],
    ['src', 'shaders', 'tsconfig.json'],
  ],
  [
    ['dist/bundles/index.js', 'dist/bundles/browser.js', 'dist/bundles/workerd.js', 'dist/bundles/packed.js', 'dist/bundles/conformance.js'],
    ['src', 'shaders', 'scripts/bundle.mjs'],
  ],
];
const stale = targets.some(([outputs, sources]) => {
  const since = newestOf(sources);
  return outputs.some((p) => !existsSync(join(root, p)) || statSync(join(root, p)).mtimeMs < since);
});
if (stale) {
  execSync('npm run --silent build', { cwd: root, stdio: 'inherit' });
  // KernelExports follows asc's bindings of the new builds.
  writeInterface();
}
