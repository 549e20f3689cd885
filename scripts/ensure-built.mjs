// Builds (npm run build) when an output is missing or older than its sources, so `npm test`,
// `npm start` and `npm run bench` work on a fresh clone without a separate build step.
import { execSync } from 'node:child_process';
import { readdirSync, statSync, existsSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const newest = (path) => {
  const s = statSync(path);
  if (!s.isDirectory()) return s.mtimeMs;
  return Math.max(0, ...readdirSync(path).map((e) => newest(join(path, e))));
};
const sources = Math.max(...['assembly', 'src', 'shaders', 'asconfig.json', 'tsconfig.json', 'package.json']
  .map((p) => join(root, p)).filter(existsSync).map(newest));
const outputs = ['build/edge-moq-simd.wasm', 'build/edge-moq-scalar.wasm', 'dist/index.js', 'dist/cli/main.js'].map((p) => join(root, p));
const stale = outputs.some((p) => !existsSync(p) || statSync(p).mtimeMs < sources);
if (stale) execSync('npm run --silent build', { cwd: root, stdio: 'inherit' });
