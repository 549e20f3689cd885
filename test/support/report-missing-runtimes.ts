// Vitest global setup: after the run, name every suite that could not run and how to fix it.

import { existsSync, readFileSync, rmSync } from 'node:fs';
import { randomUUID } from 'node:crypto';

export default function setup(): () => void {
  process.env.EDGE_MOQ_TEST_RUN = randomUUID();
  return async () => {
    const { MISSING_RUNTIMES_FILE } = await import('./runtimes.js');
    if (!existsSync(MISSING_RUNTIMES_FILE)) return;
    const lines = [...new Set(readFileSync(MISSING_RUNTIMES_FILE, 'utf8').trim().split('\n'))];
    rmSync(MISSING_RUNTIMES_FILE);
    const report = ['', 'Suites NOT run (their runtime is missing on this machine):'];
    const installs = new Set<string>();
    for (const line of lines) {
      const [name, problem, install] = line.split('\t');
      report.push(`  - ${name}: ${problem}`);
      installs.add(install!);
    }
    report.push(`Install what they need with: ${[...installs].join(' && ')}`);
    console.warn(report.join('\n'));
  };
}
