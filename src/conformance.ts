// Runs a `moq-conformance/1` file (test/fixtures/conformance/FORMAT.md) on a backend: every
// fake_quant case through fakeQuantize, every schedule case through a Quantizer.

import type { Backend } from './backends/backend.js';
import { EdgeMoqError } from './errors.js';
import { describeValue } from './describe.js';
import { Quantizer, type BlockEigenvalues, type Parameter } from './quantizer.js';
import type { QuantizationType, Rounding } from './kernel-plan.js';

/** One fakeQuantize call: `input` quantized with these settings must give `expected`. */
export interface FakeQuantCase {
  id: string;
  kind: 'fake_quant';
  bits: number;
  groups: number;
  type: QuantizationType;
  rounding: Rounding;
  shape: number[];
  input: number[];
  expected: number[];
}
/** A parameter of a schedule case, with its own schedule where it sets one. */
export interface ScheduleParam {
  name: string;
  shape: number[];
  data: number[];
  group: number;
  startBits?: number;
  targetBits?: number;
  period?: number;
}
/** One optimizer step of a schedule case: the update applied, and the state the quantizer must reach. */
export interface ScheduleStep {
  update: number[][];
  overflow: boolean;
  eigenvalueEnabled?: boolean;
  blockEigenvalue?: ([number, number] | null)[];
  after: { qsteps: number; ratio: number; params: { data: number[]; bits?: number; period?: number }[] };
}
/** A Quantizer run over several steps, checked after each one. */
export interface ScheduleCase {
  id: string;
  kind: 'schedule';
  config: { groups: number; type: QuantizationType; rounding: Rounding; mixedFp16: boolean; changeRatio: number; scheduleOffset?: number };
  params: ScheduleParam[];
  steps: ScheduleStep[];
}
/** A case of a `moq-conformance/1` file. */
export type ConformanceCase = FakeQuantCase | ScheduleCase;

/** What one case gave: passed, or the first difference. */
export interface CaseResult {
  id: string;
  kind: ConformanceCase['kind'];
  passed: boolean;
  /** The first difference, when the case failed. */
  detail?: string;
  /**
   * WebGPU only: values one grid step away from the reference where x/s lies within an ulp of
   * a rounding tie (WGSL division need not be correctly rounded). The case still passes.
   */
  nearTies?: number;
}

/** Every case's result, in file order, and the counts. */
export interface ConformanceReport {
  results: CaseResult[];
  passed: number;
  failed: number;
  /** Cases that passed only thanks to near-tie values (WebGPU). */
  nearTieCases: number;
}

/** Relative tolerance at 1 and 2 bits, where the group mean's summation order is free. */
const LOW_BIT_TOLERANCE = 1e-6;

/**
 * Checks that a parsed JSON value is a `moq-conformance/1` file whose cases all have a known kind.
 * @param file - the file's parsed JSON
 * @returns its cases, in file order
 * @throws EdgeMoqError `CONFORMANCE_FILE` when it is not such a file
 */
export function parseConformance(file: unknown): ConformanceCase[] {
  const f = file as { format?: unknown; cases?: unknown };
  if (typeof f !== 'object' || f === null || f.format !== 'moq-conformance/1' || !Array.isArray(f.cases)) {
    throw new EdgeMoqError('CONFORMANCE_FILE', 'not a moq-conformance/1 file: expected { "format": "moq-conformance/1", "cases": [...] }.');
  }
  for (const c of f.cases as { id?: unknown; kind?: unknown }[]) {
    if (c?.kind !== 'fake_quant' && c?.kind !== 'schedule') {
      throw new EdgeMoqError('CONFORMANCE_FILE', `case ${describeValue(c?.id)} has unknown kind ${describeValue(c?.kind)}.`);
    }
  }
  return f.cases as ConformanceCase[];
}

/**
 * Runs every case of a `moq-conformance/1` file on a backend, in file order. A case that throws
 * fails with what it threw; it does not stop the run.
 * @param file - the file's parsed JSON (checked by {@link parseConformance})
 * @param backend - the backend under test
 * @param onResult - called after each case, for progress
 * @returns every case's result and the counts
 * @throws EdgeMoqError `CONFORMANCE_FILE` when the file is not a conformance file
 */
export async function runConformance(file: unknown, backend: Backend, onResult?: (result: CaseResult) => void): Promise<ConformanceReport> {
  const results: CaseResult[] = [];
  for (const c of parseConformance(file)) {
    let detail: string | undefined;
    let nearTies = 0;
    try {
      if (c.kind === 'fake_quant') ({ detail, nearTies } = await runFakeQuant(c, backend));
      else detail = await runSchedule(c, backend);
    } catch (e) {
      detail = `threw ${(e as Error).name}: ${(e as Error).message}`;
    }
    const result: CaseResult = {
      id: c.id,
      kind: c.kind,
      passed: detail === undefined,
      ...(detail ? { detail } : {}),
      ...(nearTies ? { nearTies } : {}),
    };
    results.push(result);
    onResult?.(result);
  }
  const passed = results.filter((r) => r.passed).length;
  const nearTieCases = results.filter((r) => r.passed && r.nearTies).length;
  return { results, passed, failed: results.length - passed, nearTieCases };
}

async function runFakeQuant(c: FakeQuantCase, backend: Backend): Promise<{ detail: string | undefined; nearTies: number }> {
  const input = Float32Array.from(c.input, Math.fround);
  const data = input.slice();
  await backend.fakeQuantize(data, { bits: c.bits, groups: c.groups, type: c.type, rounding: c.rounding });
  if (c.bits <= 2 || backend.kind !== 'webgpu') return { detail: firstDifference(data, c.expected, c.bits <= 2, 'output'), nearTies: 0 };
  // WebGPU: forgive a value exactly one step off where the reference sat on a rounding tie.
  const expected = Float32Array.from(c.expected, Math.fround);
  let nearTies = 0;
  const size = input.length / c.groups;
  for (let i = 0; i < data.length; i++) {
    if (data[i] === expected[i]) continue;
    const g = Math.floor(i / size);
    const grid = gridOf(input.subarray(g * size, (g + 1) * size), c.bits, c.type === 'asymmetric');
    if (!grid || !nearTie(input[i]!, data[i]!, expected[i]!, grid)) {
      return { detail: `output[${i}]: got ${data[i]}, expected ${expected[i]} (not a near-tie)`, nearTies };
    }
    nearTies++;
  }
  return { detail: undefined, nearTies };
}

/** The reference's scale and zero point for a group (DESIGN.md), in float32. */
function gridOf(group: Float32Array, bits: number, asymmetric: boolean): { scale: number; zero: number } | null {
  let lo = Infinity,
    hi = -Infinity;
  for (const x of group) {
    lo = Math.min(lo, x);
    hi = Math.max(hi, x);
  }
  const f = Math.fround;
  const scale = asymmetric ? f(f(hi - lo) * 2 ** -bits) : f(Math.max(-lo, hi) * 2 ** (1 - bits));
  if (!(scale > 0)) return null;
  const quotient = f(lo / scale);
  const rounded = Math.round(quotient) - (Math.round(quotient) - quotient === 0.5 && Math.round(quotient) % 2 !== 0 ? 1 : 0);
  return { scale, zero: asymmetric ? f(rounded * scale) : 0 };
}

/** One step apart, and (x - zero)/scale within two float32 ulps of a half-integer. */
function nearTie(x: number, got: number, want: number, { scale, zero }: { scale: number; zero: number }): boolean {
  const v = Math.fround(x - zero) / scale;
  const ulp = 2 ** (Math.floor(Math.log2(Math.max(Math.abs(v), 2 ** -126))) - 23);
  const fromTie = Math.abs(v - Math.floor(v) - 0.5);
  return Math.abs(Math.abs(got - want) - scale) <= scale * 2 ** -20 && fromTie <= 2 * ulp;
}

async function runSchedule(c: ScheduleCase, backend: Backend): Promise<string | undefined> {
  const { config } = c;
  const parameters: Record<string, { startBits: number; targetBits: number; period: number }> = {};
  for (const p of c.params) {
    if (p.startBits !== undefined) parameters[p.name] = { startBits: p.startBits, targetBits: p.targetBits!, period: p.period! };
  }
  const quantizer = new Quantizer(
    {
      groups: config.groups,
      type: config.type,
      rounding: config.rounding,
      mixedFp16: config.mixedFp16,
      changeRatio: config.changeRatio,
      scheduleOffset: config.scheduleOffset ?? 0,
      parameters,
    },
    { backend, logger: () => {} },
  );
  const params: Parameter[] = c.params.map((p) => ({ name: p.name, shape: p.shape, data: Float32Array.from(p.data, Math.fround) }));
  const groupCount = Math.max(...c.params.map((p) => p.group)) + 1;
  const groups: Parameter[][] = Array.from({ length: groupCount }, (_, g) => params.filter((_, i) => c.params[i]!.group === g));

  for (const [s, step] of c.steps.entries()) {
    params.forEach((p, i) => {
      const update = step.update[i]!;
      for (let j = 0; j < p.data.length; j++) p.data[j] = Math.fround(p.data[j]! + Math.fround(update[j]!));
    });
    let blockEigenvalue: BlockEigenvalues | undefined;
    if (step.blockEigenvalue) {
      blockEigenvalue = Object.fromEntries(params.map((p, i) => [p.name, step.blockEigenvalue![i] ?? null]));
    }
    await quantizer.step(groups, { overflow: step.overflow, eigenvalueEnabled: step.eigenvalueEnabled ?? false, ...(blockEigenvalue ? { blockEigenvalue } : {}) });
    const at = `step ${s}`;
    if (quantizer.qsteps !== step.after.qsteps) return `${at}: qsteps ${quantizer.qsteps}, expected ${step.after.qsteps}`;
    if (quantizer.ratio !== step.after.ratio) return `${at}: ratio ${quantizer.ratio}, expected ${step.after.ratio}`;
    for (const [i, expected] of step.after.params.entries()) {
      const p = params[i]!;
      const bits = quantizer.bitsOf(p.name);
      if (expected.bits !== undefined && bits !== expected.bits) return `${at}, ${p.name}: bits ${bits}, expected ${expected.bits}`;
      const period = quantizer.periodOf(p.name);
      if (expected.period !== undefined && period !== expected.period) return `${at}, ${p.name}: period ${period}, expected ${expected.period}`;
      const lowBits = bits !== undefined && bits <= 2 && p.shape.length > 1;
      const diff = firstDifference(p.data, expected.data, lowBits, p.name);
      if (diff) return `${at}, ${diff}`;
    }
  }
  return undefined;
}

function firstDifference(actual: Float32Array, expected: number[], relative: boolean, label: string): string | undefined {
  if (actual.length !== expected.length) return `${label}: ${actual.length} values, expected ${expected.length}`;
  for (let i = 0; i < actual.length; i++) {
    const want = Math.fround(expected[i]!);
    const got = actual[i]!;
    const ok = relative ? Math.abs(got - want) <= LOW_BIT_TOLERANCE * Math.abs(want) : got === want;
    if (!ok) return `${label}[${i}]: got ${got}, expected ${want}${relative ? ' (relative tolerance 1e-6)' : ''}`;
  }
  return undefined;
}
