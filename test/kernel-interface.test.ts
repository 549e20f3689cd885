// The kernel interface (scripts/kernel-interface.mjs) and what is generated from it: every output
// is up to date; the host writes each Job field where the WGSL struct, as the kernels read it,
// has it; the exact float32 literals; and KernelExports declares what both .wasm builds export,
// with the arity each function really has.

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SECTION_BEGIN, SECTION_END, comment, recordBytes, staleOutputs, wgslFloat } from '../scripts/generate-interface.mjs';
import { constants, records } from '../scripts/kernel-interface.mjs';
import { JOB_BYTES, JOB_SLOT_BYTES, PARTIAL_BYTES, writeJob, type JobLayout } from '../src/backends/webgpu/plan.js';
import { PACK_BYTES } from '../src/backends/webgpu/interface.js';
import type { KernelPlan } from '../src/kernel-plan.js';

const read = (path: string) => readFileSync(new URL(`../${path}`, import.meta.url), 'utf8');

/** The fields of `struct name` in `wgsl`, in order, with their types. */
function wgslStruct(wgsl: string, name: string): [string, string][] {
  const body = new RegExp(`^struct ${name} \\{\\n([\\s\\S]*?)\\n\\}`, 'm').exec(wgsl)?.[1];
  expect(body, `struct ${name}`).toBeDefined();
  return [...body!.matchAll(/^\s*(\w+): (\w+),$/gm)].map(([, field, type]) => [field!, type!]);
}

/** A WGSL hex float literal's value, read independently of the generator. */
function hexFloatValue(literal: string): number {
  const [, sign, fraction, exponent] = /^(-?)0x1(?:\.([0-9a-f]+))?p(-?\d+)f$/.exec(literal)!;
  const mantissa = 1 + (fraction ? parseInt(fraction, 16) / 16 ** fraction.length : 0);
  return (sign ? -1 : 1) * mantissa * 2 ** Number(exponent);
}

describe('the generated kernel interface', () => {
  it('every generated file is what scripts/kernel-interface.mjs gives (run node scripts/generate-interface.mjs)', () => {
    expect(staleOutputs().map(([path]) => path)).toEqual([]);
  });

  it('shaders/job.wgsl and shaders/pack.wgsl each hold one generated section', () => {
    for (const path of ['shaders/job.wgsl', 'shaders/pack.wgsl']) {
      const lines = read(path).split('\n');
      expect(
        lines.filter((l) => l === SECTION_BEGIN),
        path,
      ).toHaveLength(1);
      expect(
        lines.filter((l) => l === SECTION_END),
        path,
      ).toHaveLength(1);
    }
  });

  it('writeJob puts every field where struct Job in shaders/job.wgsl has it', () => {
    const plan: KernelPlan = {
      length: 50_000,
      bits: 4,
      groupCount: 10,
      groupSize: 5000,
      asymmetric: true,
      full: false,
      stochastic: true,
      key: 0xdeadbeef,
      blend: true,
      ratio: 0.25,
      rest: 0.75,
    };
    const job: JobLayout = {
      plan,
      base: 1234,
      chunksPerGroup: 2,
      chunkStatsBase: 7,
      groupStatsBase: 27,
      thresholdChunkBase: 37,
      thresholdGroupBase: 57,
      prepare: [],
      write: [],
    };
    // The bits the kernels test (hasFlag(FLAG_*) in shaders/*.wgsl).
    const flag = Object.fromEntries([...read('shaders/job.wgsl').matchAll(/^const FLAG_(\w+): u32 = (\d+)u;$/gm)].map(([, name, value]) => [name!, Number(value)]));
    expect(Object.keys(flag).sort()).toEqual(['ASYMMETRIC', 'BLEND', 'FULL', 'MEAN', 'STOCHASTIC']);
    // Each field as the kernels read it: the meaning stated here, not taken from the writer.
    const want: Record<string, number> = {
      base: 1234,
      length: 50_000,
      groupSize: 5000,
      groupCount: 10,
      chunksPerGroup: 2,
      chunkStatsBase: 7,
      groupStatsBase: 27,
      thresholdChunkBase: 37,
      thresholdGroupBase: 57,
      statusIndex: 3,
      flags: flag.ASYMMETRIC! | flag.STOCHASTIC! | flag.BLEND!,
      key: 0xdeadbeef,
      opaqueZero: 0,
      scaleFactor: 1 / 16,
      lo: 0,
      hi: 15,
      ratio: 0.25,
      rest: 0.75,
    };
    const view = new DataView(new ArrayBuffer(4 * JOB_SLOT_BYTES));
    writeJob(view, 3, job);
    const fields = wgslStruct(read('shaders/job.wgsl'), 'Job');
    expect(fields.map(([name]) => name).sort()).toEqual(Object.keys(want).sort());
    const offset = 3 * JOB_SLOT_BYTES;
    fields.forEach(([name, type], k) => {
      const value = type === 'f32' ? view.getFloat32(offset + 4 * k, true) : view.getUint32(offset + 4 * k, true);
      expect(value, name).toBe(want[name]);
    });
    // Nothing outside the slot's record.
    const bytes = new Uint8Array(view.buffer);
    expect(bytes.subarray(0, offset).every((b) => b === 0)).toBe(true);
    expect(bytes.subarray(offset + 4 * fields.length).every((b) => b === 0)).toBe(true);
  });

  it('record sizes follow WGSL layout: 4-byte fields, uniform records rounded up to 16', () => {
    expect(wgslStruct(read('shaders/job.wgsl'), 'Job')).toHaveLength(18);
    expect(JOB_BYTES).toBe(80);
    expect(PARTIAL_BYTES).toBe(16);
    expect(PACK_BYTES).toBe(16);
    expect(recordBytes({ name: 'T', in: ['wgsl'], space: 'uniform', doc: '', fields: [{ name: 'a', type: 'u32' }] })).toBe(16);
    expect(recordBytes({ name: 'T', in: ['wgsl'], space: 'storage', doc: '', fields: [{ name: 'a', type: 'u32' }] })).toBe(4);
    for (const record of records) {
      for (const field of record.fields) expect(['u32', 'f32'], `${record.name}.${field.name}`).toContain(field.type);
    }
  });

  it('float constants reach WGSL as the exact float32 the other languages round to', () => {
    for (const value of [0.7, 1, -0.7, 3.4028234663852886e38, 1.1754943508222875e-38, 1 / 3]) {
      expect(hexFloatValue(wgslFloat(value)), `${value}`).toBe(Math.fround(value));
    }
    expect(wgslFloat(0.7)).toBe('0x1.666666p-1f');
    expect(wgslFloat(1)).toBe('0x1p0f');
    expect(() => wgslFloat(1e-40)).toThrow(/not a normal float32/);
    expect(() => wgslFloat(Infinity)).toThrow(/not a normal float32/);
    const threshold = constants.find((c) => c.name === 'THRESHOLD_FACTOR')!;
    expect(read('shaders/job.wgsl')).toContain(`const THRESHOLD_FACTOR: f32 = ${wgslFloat(threshold.value)};`);
    expect(read('assembly/interface.ts')).toContain(`export const THRESHOLD_FACTOR: f32 = ${threshold.value};`);
  });

  it('generated comments wrap at 100 characters and keep every word', () => {
    const text = Array.from({ length: 40 }, (_, i) => `word${i}`).join(' ');
    const lines = comment(text, '  ');
    expect(lines.length).toBeGreaterThan(1);
    for (const line of lines) expect(line.length).toBeLessThanOrEqual(100);
    expect(lines.map((l) => l.replace(/^ {2}\/\/ /, '')).join(' ')).toBe(text);
  });
});

describe('KernelExports (src/backends/wasm/kernel-exports.ts)', () => {
  const declared = read('src/backends/wasm/kernel-exports.ts');
  const members = new Map(
    [...declared.matchAll(/^ {2}(\w+)(\(([^)]*)\)|: WebAssembly\.Memory)/gm)].map(
      ([, name, , params]) => [name!, params === undefined ? 'memory' : params.split(',').filter((p) => p.trim()).length] as const,
    ),
  );

  it.each(['simd', 'scalar'])('declares exactly what build/edge-moq-%s.wasm exports, each function with its arity', async (build) => {
    const module = new WebAssembly.Module(readFileSync(new URL(`../build/edge-moq-${build}.wasm`, import.meta.url)));
    const exported = WebAssembly.Module.exports(module);
    expect(exported.map((e) => e.name).sort()).toEqual([...members.keys()].sort());
    const instance = await WebAssembly.instantiate(module, {});
    for (const { name, kind } of exported) {
      if (kind === 'memory') {
        expect(members.get(name), name).toBe('memory');
        continue;
      }
      expect(kind, name).toBe('function');
      expect(members.get(name), name).toBe((instance.exports[name] as (...args: number[]) => number).length);
    }
  });
});
