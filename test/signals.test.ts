// SIGINT and SIGTERM in the middle of a quantize or dequantize: the CLI removes its temporary
// output and exits 128 + the signal number, leaving no output and no `.partial-` file. The
// moment of the signal is drawn from a seeded generator (a small campaign; EDGE_MOQ_FUZZ_RUNS
// sets more by hand).

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { encodeSafetensors } from '../src/formats/safetensors.js';
import { uniforms } from './support/fixtures.js';

const CLI = new URL('../dist/cli/main.js', import.meta.url).pathname;
const RUNS = Number(process.env.EDGE_MOQ_FUZZ_RUNS ?? 2);
const dir = mkdtempSync(join(tmpdir(), 'edge-moq-signals-'));
const input = join(dir, 'model.safetensors');

beforeAll(() => {
  // 64 MiB of float32 in 16 tensors: long enough to be interrupted, quick to write.
  const tensor = new Float32Array(1 << 20).map((_, i) => Math.sin(i));
  const data = new Uint8Array(tensor.buffer);
  writeFileSync(input, encodeSafetensors(Array.from({ length: 16 }, (_, i) => ({ name: `layer.${i}.weight`, dtype: 'F32' as const, shape: [1024, 1024], data }))));
});

/** Starts the CLI, signals it `delayMs` after its temporary output appears, and waits. */
async function interrupt(args: string[], signal: NodeJS.Signals, delayMs: number): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk) => {
    stderr += chunk;
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const started = Date.now();
  while (!readdirSync(dir).some((name) => name.includes('.partial-'))) {
    if (Date.now() - started > 30_000 || child.exitCode !== null) break;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  await new Promise((resolve) => setTimeout(resolve, delayMs));
  child.kill(signal);
  return { code: await exited, stderr };
}

describe.each([
  ['SIGINT', 130],
  ['SIGTERM', 143],
] as const)('%s', (signal, exitCode) => {
  const next = uniforms(signal === 'SIGINT' ? 11 : 12);
  it.each(Array.from({ length: RUNS }, (_, run) => run))('mid-quantize leaves nothing behind (run %i)', async () => {
    const output = join(dir, `out-${signal}.safetensors`);
    const { code, stderr } = await interrupt(['quantize', input, '-o', output, '--bits', '4'], signal, Math.floor(next() * 150));
    expect(stderr).toMatch(new RegExp(`interrupted by ${signal}; removed the unfinished output`));
    expect(code).toBe(exitCode);
    expect(existsSync(output)).toBe(false);
    expect(readdirSync(dir).filter((name) => name.includes('.partial-'))).toEqual([]);
  });
});
