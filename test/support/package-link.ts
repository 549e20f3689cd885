// Runtime suites import `edge-moq` by name, as a user's code does, so that the package's
// `exports` conditions pick the entry. This makes a node_modules folder holding a link to this
// checkout, for bundlers (esbuild's nodePaths) and for Deno.

import { mkdirSync, mkdtempSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const PACKAGE_ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** A fresh directory containing node_modules/edge-moq -> this checkout; returns the directory. */
export function linkedPackageDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `edge-moq-${prefix}-`));
  mkdirSync(join(dir, 'node_modules'));
  symlinkSync(PACKAGE_ROOT, join(dir, 'node_modules', 'edge-moq'), 'dir');
  return dir;
}
