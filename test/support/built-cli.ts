// The command line as a user runs it: the built dist/cli/main.js in a child process. Suites whose
// workers load compiled modules, or that test what the binary prints and exits with, use this
// rather than the in-process runCli (./cli.ts).

import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

export const BUILT_CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `cli` (a copy of the built command line) with Node; what it exits with and prints, a failing exit included. */
export async function runCliAt(cli: string, ...args: string[]): Promise<CliRun> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [cli, ...args], { maxBuffer: 1 << 24 });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const error = e as CliRun;
    return { code: error.code, stdout: error.stdout, stderr: error.stderr };
  }
}

/** Runs the built command line in this checkout. */
export function runBuiltCli(...args: string[]): Promise<CliRun> {
  return runCliAt(BUILT_CLI, ...args);
}
