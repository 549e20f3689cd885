// Suites that need a system runtime (SwiftShader's Vulkan driver, Deno, Chromium...) call
// `runtimeAvailable` once. Missing on a developer machine: the suite is skipped and recorded so
// that `npm test` ends by naming it and the command that installs what it needs. Under CI
// (CI=true) a missing runtime fails the run instead.

import { appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const MISSING_RUNTIMES_FILE = join(tmpdir(), `edge-moq-missing-runtimes-${process.env.EDGE_MOQ_TEST_RUN ?? 'local'}.txt`);

export interface RuntimeCheck {
  /** What the suite runs on, e.g. "WebGPU (Dawn on SwiftShader)". */
  name: string;
  /** The one command that installs what is missing. */
  install: string;
}

export async function runtimeAvailable(check: RuntimeCheck, probe: () => Promise<string | null>): Promise<boolean> {
  let problem: string | null;
  try {
    problem = await probe();
  } catch (e) {
    problem = (e as Error).message;
  }
  if (problem === null) return true;
  if (process.env.CI === 'true' || process.env.CI === '1') {
    throw new Error(`${check.name} is required under CI but unavailable: ${problem}. Install it with: ${check.install}`);
  }
  appendFileSync(MISSING_RUNTIMES_FILE, `${check.name}\t${problem}\t${check.install}\n`);
  return false;
}
