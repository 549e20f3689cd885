// The soak (scripts/soak.mjs), short: 300 steps over 20 tensors on both WebAssembly backends,
// in a child process under --expose-gc so that every sample is taken on a collected heap. After
// warm-up nothing may grow: not the JavaScript heap, not external or ArrayBuffer memory, not the
// WebAssembly memory (exactly). And the soak must notice a leak when there is one.
// `npm run soak` is the long run (10,000 steps over 100 tensors on every backend).

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const SCRIPT = new URL('../scripts/soak.mjs', import.meta.url).pathname;

interface MetricRow {
  start: number;
  afterWarmUp: number;
  peak: number;
  end: number;
  verdict: string;
}
interface Result {
  kind: string;
  steps: number;
  finite: boolean;
  switches: number;
  samples: number;
  verdict: string;
  metrics: Record<string, MetricRow>;
}

async function soak(...args: string[]): Promise<{ code: number; results: Result[] }> {
  const run = promisify(execFile)(process.execPath, ['--expose-gc', SCRIPT, '--json', ...args], { maxBuffer: 1 << 22 });
  let stdout: string,
    code = 0;
  try {
    ({ stdout } = await run);
  } catch (e) {
    ({ stdout, code } = e as { stdout: string; code: number });
  }
  return {
    code,
    results: stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Result),
  };
}

describe('soak (short)', () => {
  it('stays flat after warm-up on wasm-simd and wasm', async () => {
    const { code, results } = await soak('--steps', '300', '--tensors', '20', '--backend', 'wasm-simd,wasm', '--every', '10');
    expect(results.map((r) => r.kind)).toEqual(['wasm-simd', 'wasm']);
    for (const r of results) {
      const summary = `${r.kind}: ${JSON.stringify(r.metrics)}`;
      expect(r.steps, summary).toBe(300);
      expect(r.finite).toBe(true);
      expect(r.switches, 'the schedule stepped precision down').toBeGreaterThan(0);
      expect(r.samples).toBeGreaterThanOrEqual(30);
      for (const [name, m] of Object.entries(r.metrics)) expect(m.verdict, `${r.kind} ${name}: ${JSON.stringify(m)}`).toBe('flat');
      expect(r.metrics.wasmMemory!.end).toBe(r.metrics.wasmMemory!.afterWarmUp);
      expect(r.verdict).toBe('flat');
    }
    expect(code).toBe(0);
  });

  it('reports GROWING, and fails, when something leaks', async () => {
    const { code, results } = await soak('--steps', '300', '--tensors', '20', '--backend', 'wasm-simd', '--every', '10', '--simulate-leak', '16384');
    expect(results[0]!.metrics.heapUsed!.verdict).toBe('GROWING');
    expect(results[0]!.verdict).toBe('GROWING');
    expect(code).toBe(1);
  });
});
