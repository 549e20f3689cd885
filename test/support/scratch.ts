// Scratch space on disk for one test file: a temporary folder removed after the file's tests,
// and fresh subfolders in it so that tests writing the same file names do not meet.

import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';

export function useScratch(prefix: string): { root: string; newFolder(): string } {
  const root = mkdtempSync(join(tmpdir(), prefix));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  let folders = 0;
  return {
    root,
    newFolder() {
      const folder = join(root, `f${folders++}`);
      mkdirSync(folder);
      return folder;
    },
  };
}
