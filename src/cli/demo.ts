// `edge-moq demo` (npm start): the honest test of MoQ's claim, and the workflow that ships its
// result. A small network learns real MNIST digits from one seed, batches and budget: in full
// precision, with MoQ stepping its weights from 8 bits down to each target during training
// (attachMoq), and in full precision followed by post-training quantization (PTQ) to the same
// bits and groups, at 4, 3 and 2 bits, where PTQ goes from harmless to ruinous. Over three seeds,
// so that a lead is seen against the spread. The first seed's MoQ models are then exported
// packed, written as tfjs model folders and loaded back through edge-moq/tfjs. It prints what
// each run ends with and writes moq-report.html; whatever the numbers say is what it reports.

import { writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Backend, BackendRequest } from '../backends/backend.js';
import { createBackend } from '../backends/select.js';
import { logToStderr } from './packer.js';
import type { QuantizerOptions } from '../config.js';
import { describeValue } from '../describe.js';
import { InvalidInputError } from '../errors.js';
import { installHint, loadTensorFlow, missingPackages, REQUIRED_PACKAGES, type TfBackendName } from '../demo/dependencies.js';
import { exportAndReload } from '../demo/export-row.js';
import { loadMnist } from '../demo/mnist.js';
import { describeModel, layerNames, weightShapes } from '../demo/model.js';
import { renderReport } from '../demo/report.js';
import { exportNotes, exportTable, moqOutcome, perSeedTable, reloadedAsTrained, sweepTable, type ExportRow, type SeedResult, type TextTable } from '../demo/summary.js';
import { trainFullPrecision, trainMoq, type TrainingSetup } from '../demo/train.js';
import { createPacker } from '../packed/index.js';
import { choiceFlag, integerFlag, stringFlag, type ParsedArgs } from './args.js';
import { createProgress } from './progress.js';
import { table } from './table.js';

/**
 * Three hidden layers of 64. One wide hidden layer is the most forgiving case for PTQ (its error
 * has no later layer to compound through); MoQ was made for deep stacks.
 */
const HIDDEN = [64, 64, 64] as const;
const LEARNING_RATE = 1e-3;
/**
 * 1,000 steps of 64 (8 epochs) and 3 seeds: 12 runs that fit in 3 minutes on 2 cores. Over 5
 * seeds, 1,500 steps moved the mean accuracy of full precision, of MoQ and of PTQ at 3 and 4 bits
 * by at most 0.2 points (PTQ at 2 bits gained 4.5, still 9 behind MoQ), less than the
 * seed-to-seed spread of MoQ's lead: more seeds tell more than more steps.
 */
const DEFAULT_STEPS = 1000;
const DEFAULT_SEEDS = 3;
/** DeepSpeed's MoQ tutorial quantizes every weight in 8 groups (quantize_groups: 8), symmetric. */
const TUTORIAL_GROUPS = 8;
/** At 4 bits PTQ loses little on this network; 3 and 2 bits are where MoQ's training pays. */
const DEFAULT_TARGETS = [4, 3, 2] as const;
const MAX_BITS = 16;
const QUANTIZATION_BACKENDS: readonly BackendRequest[] = ['auto', 'wasm-simd', 'wasm'];
const TF_BACKENDS: readonly TfBackendName[] = ['wasm', 'cpu'];
/** The weight whose histogram the report draws: the first layer holds nearly all the weights. */
const HISTOGRAM_WEIGHT = 'hidden1/kernel';
/** Beside the report, one folder per target: what a server would host. */
const MODELS_FOLDER = 'moq-models';

export interface DemoOptions {
  /** The target precisions, in the order given. */
  bits: number[];
  startBits: number;
  /** Each target's period, in the order of `bits`. */
  periods: number[];
  groups: number;
  eigenvalues: boolean;
  steps: number;
  batch: number;
  seed: number;
  seeds: number;
  evalEvery: number;
  report: string;
  backend: BackendRequest;
  tfBackend: TfBackendName | undefined;
}

function atMost(name: string, value: number, max: number, why: string): void {
  if (value > max) throw new InvalidInputError('INVALID_ARGUMENT', `--${name} must be at most ${max} (${why}), got ${value}.`);
}

/** `--bits 4,3,2`: distinct integers from 1 to 16, in the order given. */
function targetsFlag(args: ParsedArgs): number[] {
  const raw = stringFlag(args, 'bits');
  if (raw === undefined) return [...DEFAULT_TARGETS];
  const parts = raw.split(',');
  const targets = parts.map((part) => (/^[0-9]+$/.test(part) ? Number(part) : NaN));
  if (targets.some((bits) => !(bits >= 1 && bits <= MAX_BITS))) {
    throw new InvalidInputError('INVALID_ARGUMENT', `--bits must be one or more integers from 1 to ${MAX_BITS} separated by commas (e.g. 4,3,2 or 3), got ${describeValue(raw)}.`);
  }
  const repeated = targets.find((bits, i) => targets.indexOf(bits) !== i);
  if (repeated !== undefined) throw new InvalidInputError('INVALID_ARGUMENT', `--bits names ${repeated} twice; give each target once.`);
  return targets;
}

/**
 * The demo's options. Without --period, each target's period is chosen so that the weights reach
 * it halfway through, leaving the second half to recover at the target precision. The schedule
 * multiplies the period by 2 at each of the (start - target) switches, so the last one comes at
 * period × 2^(switches - 1). With eigenvalues the multiplier is 2 × (1 + floor(4λ)), up to 10 for
 * the sharpest layer: the period is then chosen for that worst case.
 */
export function demoOptions(args: ParsedArgs): DemoOptions {
  if (args.positionals.length > 0) {
    throw new InvalidInputError('INVALID_ARGUMENT', `demo takes no file arguments, got ${describeValue(args.positionals[0])}.`);
  }
  const steps = integerFlag(args, 'steps', DEFAULT_STEPS, 1);
  const bits = targetsFlag(args);
  const startBits = integerFlag(args, 'start-bits', 8, Math.max(...bits));
  atMost('start-bits', startBits, MAX_BITS, `the quantizer works from 1 to ${MAX_BITS} bits`);
  const eigenvalues = args.flags.get('eigenvalues') === true;
  const period = args.flags.has('period') ? integerFlag(args, 'period', 1, 1) : undefined;
  const periods = bits.map((target) => period ?? Math.max(1, Math.floor(steps / 2 / lastSwitchFactor(startBits - target, eigenvalues))));
  const groups = integerFlag(args, 'groups', TUTORIAL_GROUPS, 1);
  const kernels = weightShapes(HIDDEN)
    .filter((w) => w.shape.length > 1)
    .map((w) => ({ ...w, size: w.shape[0]! * w.shape[1]! }));
  const misfit = kernels.find((k) => k.size % groups !== 0);
  if (misfit) {
    const fitting = commonDivisors(kernels.map((k) => k.size));
    const shown = fitting.length > 12 ? [...fitting.slice(0, 12), '...'] : fitting;
    throw new InvalidInputError(
      'INVALID_ARGUMENT',
      `--groups ${groups} does not divide ${misfit.name} (${misfit.shape.join(' x ')} = ${misfit.size} weights); groups that divide every kernel: ${shown.join(', ')}.`,
    );
  }
  const batch = integerFlag(args, 'batch', 64, 1);
  atMost('batch', batch, 8000, 'the training set holds 8,000 digits');
  const seeds = integerFlag(args, 'seeds', DEFAULT_SEEDS, 1);
  atMost('seeds', seeds, 100, 'each seed trains once per target and once in full precision');
  const seed = integerFlag(args, 'seed', 1, 0);
  atMost('seed', seed, 0xffffffff - (seeds - 1), 'seeds are 32-bit');
  const report = stringFlag(args, 'report') ?? 'moq-report.html';
  return {
    bits,
    startBits,
    periods,
    groups,
    steps,
    batch,
    seed,
    seeds,
    report,
    eigenvalues,
    evalEvery: integerFlag(args, 'eval-every', Math.max(1, Math.round(steps / 30)), 1),
    backend: choiceFlag(args, 'backend', QUANTIZATION_BACKENDS) ?? 'auto',
    tfBackend: choiceFlag(args, 'tf-backend', TF_BACKENDS),
  };
}

/** The last switch comes at period × this (the largest eigenvalue factor at every switch, with eigenvalues). */
function lastSwitchFactor(switches: number, eigenvalues: boolean): number {
  return switches === 0 ? 1 : (eigenvalues ? 10 : 2) ** (switches - 1);
}

/**
 * Steps over which the blend ratio falls from 1 to 0 after a switch: the period the schedule
 * would have without eigenvalues or --period, so the blend is the same whatever the schedule.
 */
function blendSteps(o: DemoOptions, bits: number): number {
  return Math.max(1, Math.floor(o.steps / 2 ** (o.startBits - bits)));
}

function commonDivisors(sizes: readonly number[]): number[] {
  const gcd = sizes.reduce((a, b) => {
    while (b) [a, b] = [b, a % b];
    return a;
  });
  return Array.from({ length: gcd }, (_, i) => i + 1).filter((d) => gcd % d === 0);
}

/** MoQ to one target as configured here, with fp16_mixed_quantize's blend (DeepSpeed's mixed-precision MoQ). */
function quantizerOptions(o: DemoOptions, target: number): QuantizerOptions {
  const period = o.periods[o.bits.indexOf(target)]!;
  return {
    groups: o.groups,
    type: 'symmetric',
    rounding: 'nearest',
    mixedFp16: true,
    changeRatio: 1 / blendSteps(o, target),
    schedules: [{ name: 'kernels', startBits: o.startBits, targetBits: target, period, modules: ['/kernel$'] }],
    ...(o.eigenvalues ? { eigenvalue: { enabled: true } } : {}),
  };
}

/** "a", "a and b", "a, b and c". */
function listed(items: readonly string[]): string {
  return items.length < 2 ? items.join('') : `${items.slice(0, -1).join(', ')} and ${items.at(-1)}`;
}

function moqSetup(o: DemoOptions): string {
  const each = o.bits.map((bits, i) => {
    const reached = o.periods[i]! * lastSwitchFactor(o.startBits - bits, o.eigenvalues);
    return o.eigenvalues
      ? `${bits} bits: period ${o.periods[i]} times 2-10 per switch by each layer's Hessian eigenvalue, reached by step ${reached} at the latest`
      : `${bits} bits: period ${o.periods[i]}, reached at step ${reached}`;
  });
  const blends = o.bits.map((bits) => `1/${blendSteps(o, bits)}`);
  return (
    `${o.startBits} -> target (${each.join('; ')}), ${o.groups} groups${o.groups === TUTORIAL_GROUPS ? " as in DeepSpeed's MoQ tutorial" : ''}, ` +
    `symmetric, nearest; blend ratio falls ${blends.join(', ')} per step`
  );
}

function printTable(t: TextTable): void {
  console.log(`\n${t.caption ? `${t.caption}\n` : ''}${table(t.header, t.rows)}`);
}

export async function demoCommand(args: ParsedArgs): Promise<number> {
  const o = demoOptions(args);
  const missing = missingPackages(REQUIRED_PACKAGES);
  if (missing.length > 0) {
    console.error(`edge-moq demo: ${installHint(missing)}`);
    return 2;
  }
  const { tf, backend: tfBackend, note } = await loadTensorFlow(o.tfBackend);
  const data = loadMnist();
  const backend: Backend = await createBackend({ kind: o.backend, log: logToStderr });
  const kernels = layerNames(HIDDEN).map((layer) => `${layer}/kernel`);
  const modelsFolder = join(dirname(o.report), MODELS_FOLDER);
  const targetsText = listed(o.bits.map(String));

  const count = (n: number) => n.toLocaleString('en-US');
  const setup: [string, string][] = [
    ['data', `${count(data.train.count)} training / ${count(data.test.count)} test digits (a fixed split of the mnist package's ${count(data.train.count + data.test.count)})`],
    [
      'model',
      `${describeModel(HIDDEN)}, Adam ${LEARNING_RATE}, batch ${o.batch}, ${o.steps} steps, ${o.seeds > 1 ? `seeds ${o.seed}..${o.seed + o.seeds - 1}` : `seed ${o.seed}`}; TensorFlow.js on ${tfBackend}`,
    ],
    ['targets', `${targetsText} bits: one MoQ run per target; one full-precision run, quantized once to each target for PTQ`],
    ['MoQ', moqSetup(o)],
    ['PTQ', `the full-precision run's weights, quantized once to each target in ${o.groups} groups; biases stay float32 in both`],
    ['export', `seed ${o.seed}'s MoQ models packed from their masters at their final bits, written to ${modelsFolder}/, loaded back by tf.loadLayersModel through edge-moq/tfjs's packedModel`],
    ['quantized on', backend.kind],
  ];
  console.log(`edge-moq demo: MoQ against post-training quantization on MNIST digits, at ${targetsText} bits\n`);
  if (note) console.error(note);
  console.log(setup.map(([what, how]) => (what === 'quantized on' ? `${what} ${how}` : `${what.padEnd(8)} ${how}`)).join('\n'));

  const runsPerSeed = 1 + o.bits.length;
  const progress = createProgress('training');
  const totalSteps = runsPerSeed * o.steps * o.seeds;
  const started = Date.now();
  const results: SeedResult[] = [];
  const exported: ExportRow[] = [];
  const packer = await createPacker(backend);
  try {
    for (let i = 0; i < o.seeds; i++) {
      const seed = o.seed + i;
      const where = o.seeds > 1 ? `seed ${seed} (${i + 1}/${o.seeds}), ` : '';
      const setup = (run: number): TrainingSetup => ({
        tf,
        data,
        hidden: HIDDEN,
        steps: o.steps,
        batch: o.batch,
        seed,
        learningRate: LEARNING_RATE,
        evalEvery: o.evalEvery,
        // The label changes only with the phase, so that piped output gets a line per phase, not per step.
        onStep: (step, detail) => progress.update(((i * runsPerSeed + run) * o.steps + step) / totalSteps, `${where}${detail}`),
      });
      const { full, ptq } = await trainFullPrecision(setup(0), { backend, bits: o.bits, groups: o.groups });
      const result: SeedResult = { seed, full, targets: [] };
      for (const [t, bits] of o.bits.entries()) {
        const folder = join(modelsFolder, `${bits}-bits`);
        const moq = await trainMoq(setup(1 + t), {
          backend,
          quantizer: quantizerOptions(o, bits),
          eigenvalues: o.eigenvalues,
          // The first seed's models are the ones shipped; the other seeds only measure the spread.
          ...(i === 0
            ? {
                onTrained: async (trained) => {
                  exported.push(await exportAndReload(trained, { tf, packer, bits, folder }));
                },
              }
            : {}),
        });
        result.targets.push({ bits, moq, ptq: ptq[t]! });
      }
      results.push(result);
    }
  } finally {
    progress.done();
    packer.dispose();
    backend.dispose();
  }
  console.error(`trained ${runsPerSeed * o.seeds} runs in ${((Date.now() - started) / 1000).toFixed(0)} s`);

  const sweep = sweepTable(results, o.startBits, o.groups);
  printTable(sweep);
  const seedsTable = o.seeds > 1 ? perSeedTable(results) : undefined;
  if (seedsTable) printTable(seedsTable);
  const outcomes = results[0]!.targets.map((t) => `MoQ ${o.startBits} -> ${t.bits} bits (seed ${o.seed}): ${moqOutcome(t.moq, t.bits, kernels)}.`);
  console.log(`\n${outcomes.join('\n')}`);

  const exports = { table: exportTable(exported), notes: exportNotes(exported, modelsFolder) };
  if (exports.table) printTable(exports.table);
  console.log(`\n${exports.notes.join('\n')}`);

  const first = results[0]!;
  writeFileSync(
    resolve(o.report),
    renderReport({
      title: `edge-moq: MoQ against post-training quantization on MNIST, at ${targetsText} bits`,
      setup,
      results: sweep,
      notes: outcomes,
      exports,
      ...(seedsTable ? { seeds: seedsTable } : {}),
      full: first.full,
      targets: first.targets,
      startBits: o.startBits,
      histogramWeight: HISTOGRAM_WEIGHT,
      steps: o.steps,
    }),
  );
  console.log(`report: ${o.report} (bits and blend ratio over steps, accuracy curves, ${HISTOGRAM_WEIGHT} histograms)`);
  return reloadedAsTrained(exported) ? 0 : 1;
}
