// The command line run in-process (the functions the binary calls), with what it prints captured.

import { vi } from 'vitest';
import { runCommandLine } from '../../src/cli/commands.js';

/** Runs the command line and returns what the binary would exit with and print. */
export async function runCli(argv: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  vi.spyOn(console, 'log').mockImplementation((...parts: unknown[]) => {
    stdout += `${parts.join(' ')}\n`;
  });
  vi.spyOn(console, 'error').mockImplementation((...parts: unknown[]) => {
    stderr += `${parts.join(' ')}\n`;
  });
  vi.spyOn(process.stderr, 'write').mockImplementation((text) => {
    stderr += String(text);
    return true;
  });
  try {
    return { code: await runCommandLine(argv), stdout, stderr };
  } finally {
    vi.restoreAllMocks();
  }
}
