// The command line as a user runs it (built dist/, a child process).

import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { CONFORMANCE_PATH } from './support/fixtures.js';

const CLI = new URL('../dist/cli/main.js', import.meta.url).pathname;

async function run(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [CLI, ...args], { maxBuffer: 1 << 24 });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const error = e as { code: number; stdout: string; stderr: string };
    return { code: error.code, stdout: error.stdout, stderr: error.stderr };
  }
}

describe('edge-moq conformance', () => {
  it.each(['wasm-simd', 'wasm', 'auto'])('passes the DeepSpeed file on --backend %s', async (backend) => {
    const { code, stdout } = await run('conformance', CONFORMANCE_PATH, '--backend', backend);
    expect(stdout.trim().split('\n').at(-1)).toMatch(/^306 passed, 0 failed$/);
    expect(code).toBe(0);
  });

  it('prints failing cases with their first differing element and exits non-zero', async () => {
    const file = JSON.parse(readFileSync(CONFORMANCE_PATH, 'utf8'));
    const broken = file.cases.slice(0, 3);
    broken[1].expected[2] += 1;
    const path = join(mkdtempSync(join(tmpdir(), 'edge-moq-')), 'broken.json');
    writeFileSync(path, JSON.stringify({ ...file, cases: broken }));
    const { code, stdout } = await run('conformance', path);
    expect(stdout).toContain(`FAIL ${broken[1].id}: output[2]: got`);
    expect(stdout.trim().split('\n').at(-1)).toBe('2 passed, 1 failed');
    expect(code).toBe(1);
  });

  it.each([
    [['conformance'], /usage: edge-moq conformance/],
    [['conformance', '/nonexistent.json'], /cannot read \/nonexistent.json/],
    [['conformance', CONFORMANCE_PATH, '--backend', 'tpu'], /kind must be one of/],
    [['conformance', CONFORMANCE_PATH, '--bakend', 'wasm'], /unknown option --bakend/],
    [['frobnicate'], /unknown command "frobnicate"/],
  ])('explains a bad invocation: %j', async (args, message) => {
    const { code, stderr } = await run(...args);
    expect(stderr).toMatch(message);
    expect(code).toBe(2);
  });
});

describe('edge-moq demo', () => {
  it('drives a model through 8 -> 4 bits and says which backend ran', async () => {
    const { code, stdout } = await run('demo', '--steps', '90');
    expect(code).toBe(0);
    expect(stdout).toMatch(/backend: wasm-simd/);
    expect(stdout).toMatch(/switch: head.weight -> 4 bits at step 80, next period 160/);
    const last = stdout.trim().split('\n').filter((l) => /^\s+90 /.test(l))[0]!;
    expect(last).toMatch(/4 bits/);
    expect(stdout).toMatch(/ran on wasm-simd/);
  });
});
