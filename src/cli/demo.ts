// `edge-moq demo` (npm start): the honest test of MoQ's claim. A small network learns real MNIST
// digits three ways from the same seed, batches and budget: in full precision, with MoQ stepping
// its weights from 8 down to 4 bits during training (attachMoq), and in full precision followed
// by post-training quantization (PTQ) to the same bits and groups. It prints what each run ends
// with and writes moq-report.html; whatever the numbers say is what it reports.

import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Backend, BackendRequest } from '../backends/backend.js';
import { createBackend } from '../backends/select.js';
import type { QuantizerOptions } from '../config.js';
import { describeValue } from '../describe.js';
import { InvalidInputError } from '../errors.js';
import { installHint, loadTensorFlow, missingPackages, REQUIRED_PACKAGES, type TfBackendName } from '../demo/dependencies.js';
import { loadMnist } from '../demo/mnist.js';
import { describeModel, layerNames, weightShapes } from '../demo/model.js';
import { renderReport } from '../demo/report.js';
import { moqOutcome, perSeedTable, summaryTable, type RunLabels, type SeedResult } from '../demo/summary.js';
import { trainFullPrecision, trainMoq, type TrainingSetup } from '../demo/train.js';
import { choiceFlag, integerFlag, stringFlag, type ParsedArgs } from './args.js';
import { createProgress } from './progress.js';
import { table } from './table.js';

/**
 * Three hidden layers of 64. One wide hidden layer is the most forgiving case for PTQ (its error
 * has no later layer to compound through); MoQ was made for deep stacks. Three narrow layers
 * still train twice within the time budget on two cores.
 */
const HIDDEN = [64, 64, 64] as const;
const LEARNING_RATE = 1e-3;
/** DeepSpeed's MoQ tutorial quantizes every weight in 8 groups (quantize_groups: 8), symmetric. */
const TUTORIAL_GROUPS = 8;
const QUANTIZATION_BACKENDS: readonly BackendRequest[] = ['auto', 'wasm-simd', 'wasm'];
const TF_BACKENDS: readonly TfBackendName[] = ['wasm', 'cpu'];
/** The weight whose histogram the report draws: the first layer holds nearly all the weights. */
const HISTOGRAM_WEIGHT = 'hidden1/kernel';

export interface DemoOptions {
  bits: number;
  startBits: number;
  period: number;
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

/**
 * The demo's options. Without --period, the period is chosen so that the weights reach the
 * target bits halfway through, leaving the second half to recover at the target precision. The
 * schedule multiplies the period by 2 at each of the (start - target) switches, so the last one
 * comes at period × 2^(switches - 1). With eigenvalues the multiplier is 2 × (1 + floor(4λ)),
 * up to 10 for the sharpest layer: the period is then chosen for that worst case.
 */
export function demoOptions(args: ParsedArgs): DemoOptions {
  if (args.positionals.length > 0) {
    throw new InvalidInputError('INVALID_ARGUMENT', `demo takes no file arguments, got ${describeValue(args.positionals[0])}.`);
  }
  const steps = integerFlag(args, 'steps', 1500, 1);
  const bits = integerFlag(args, 'bits', 4, 1);
  atMost('bits', bits, 16, 'the quantizer works from 1 to 16 bits');
  const startBits = integerFlag(args, 'start-bits', 8, bits);
  atMost('start-bits', startBits, 16, 'the quantizer works from 1 to 16 bits');
  const switches = startBits - bits;
  const eigenvalues = args.flags.get('eigenvalues') === true;
  const period = integerFlag(args, 'period', Math.max(1, Math.floor(steps / 2 / lastSwitchFactor(switches, eigenvalues))), 1);
  const groups = integerFlag(args, 'groups', TUTORIAL_GROUPS, 1);
  const kernels = weightShapes(HIDDEN).filter((w) => w.shape.length > 1).map((w) => ({ ...w, size: w.shape[0]! * w.shape[1]! }));
  const misfit = kernels.find((k) => k.size % groups !== 0);
  if (misfit) {
    const fitting = commonDivisors(kernels.map((k) => k.size));
    const shown = fitting.length > 12 ? [...fitting.slice(0, 12), '...'] : fitting;
    throw new InvalidInputError('INVALID_ARGUMENT',
      `--groups ${groups} does not divide ${misfit.name} (${misfit.shape.join(' x ')} = ${misfit.size} weights); groups that divide every kernel: ${shown.join(', ')}.`);
  }
  const batch = integerFlag(args, 'batch', 64, 1);
  atMost('batch', batch, 8000, 'the training set holds 8,000 digits');
  const seeds = integerFlag(args, 'seeds', 1, 1);
  atMost('seeds', seeds, 100, 'each seed trains twice');
  const seed = integerFlag(args, 'seed', 1, 0);
  atMost('seed', seed, 0xffffffff - (seeds - 1), 'seeds are 32-bit');
  const report = stringFlag(args, 'report') ?? 'moq-report.html';
  return {
    bits, startBits, period, groups, steps, batch, seed, seeds, report, eigenvalues,
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
function blendSteps(o: DemoOptions): number {
  return Math.max(1, Math.floor(o.steps / 2 ** (o.startBits - o.bits)));
}

function commonDivisors(sizes: readonly number[]): number[] {
  const gcd = sizes.reduce((a, b) => {
    while (b) [a, b] = [b, a % b];
    return a;
  });
  return Array.from({ length: gcd }, (_, i) => i + 1).filter((d) => gcd % d === 0);
}

/** MoQ as configured here, with fp16_mixed_quantize's blend (DeepSpeed's mixed-precision MoQ). */
function quantizerOptions(o: DemoOptions): QuantizerOptions {
  return {
    groups: o.groups,
    type: 'symmetric',
    rounding: 'nearest',
    mixedFp16: true,
    changeRatio: 1 / blendSteps(o),
    schedules: [{ name: 'kernels', startBits: o.startBits, targetBits: o.bits, period: o.period, modules: ['/kernel$'] }],
    ...(o.eigenvalues ? { eigenvalue: { enabled: true } } : {}),
  };
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
  const backend: Backend = await createBackend({ kind: o.backend });
  const labels: RunLabels = { full: 'full precision', moq: `MoQ ${o.startBits} -> ${o.bits} bits`, ptq: `FP + PTQ ${o.bits} bits` };
  const kernels = layerNames(HIDDEN).map((layer) => `${layer}/kernel`);

  const count = (n: number) => n.toLocaleString('en-US');
  const setup: [string, string][] = [
    ['data', `${count(data.train.count)} training / ${count(data.test.count)} test digits (a fixed split of the mnist package's ${count(data.train.count + data.test.count)})`],
    ['model', `${describeModel(HIDDEN)}, Adam ${LEARNING_RATE}, batch ${o.batch}, ${o.steps} steps, ${o.seeds > 1 ? `seeds ${o.seed}..${o.seed + o.seeds - 1}` : `seed ${o.seed}`}; TensorFlow.js on ${tfBackend}`],
    ['MoQ', `${o.startBits} -> ${o.bits} bits, period ${o.period} ` +
      (o.eigenvalues
        ? `times 2-10 per switch by each layer's Hessian eigenvalue (${o.bits} bits by step ${o.period * lastSwitchFactor(o.startBits - o.bits, true)} at the latest)`
        : `(${o.bits} bits from step ${o.period * lastSwitchFactor(o.startBits - o.bits, false)})`) +
      `, ${o.groups} groups${o.groups === TUTORIAL_GROUPS ? ' as in DeepSpeed\'s MoQ tutorial' : ''}, symmetric, nearest; blend ratio falls 1/${blendSteps(o)} per step`],
    ['PTQ', `the full-precision run's weights, quantized once to ${o.bits} bits in ${o.groups} groups; biases stay float32 in both`],
    ['quantized on', backend.kind],
  ];
  console.log(`edge-moq demo: MoQ against post-training quantization on MNIST digits\n`);
  if (note) console.error(note);
  console.log(setup.map(([what, how]) => (what === 'quantized on' ? `${what} ${how}` : `${what.padEnd(8)} ${how}`)).join('\n'));

  const progress = createProgress('training');
  const totalSteps = 2 * o.steps * o.seeds;
  const started = Date.now();
  const results: SeedResult[] = [];
  try {
    for (let i = 0; i < o.seeds; i++) {
      const seed = o.seed + i;
      const done = 2 * o.steps * i;
      const where = o.seeds > 1 ? `seed ${seed} (${i + 1}/${o.seeds}), ` : '';
      const setup = (offset: number): TrainingSetup => ({
        tf, data, hidden: HIDDEN, steps: o.steps, batch: o.batch, seed, learningRate: LEARNING_RATE, evalEvery: o.evalEvery,
        // The label changes only with the phase, so that piped output gets a line per phase, not per step.
        onStep: (step, detail) => progress.update((done + offset + step) / totalSteps, `${where}${detail}`),
      });
      const { full, ptq } = await trainFullPrecision(setup(0), { backend, bits: o.bits, groups: o.groups });
      const moq = await trainMoq(setup(o.steps), { backend, quantizer: quantizerOptions(o), eigenvalues: o.eigenvalues });
      results.push({ seed, full, moq, ptq });
    }
  } finally {
    progress.done();
    backend.dispose();
  }
  console.error(`trained ${2 * o.seeds} runs in ${((Date.now() - started) / 1000).toFixed(0)} s`);

  const resultsTable = summaryTable(results, labels, kernels, o.groups);
  console.log(`\n${table(resultsTable.header, resultsTable.rows)}`);
  const seedsTable = o.seeds > 1 ? perSeedTable(results, labels) : undefined;
  if (seedsTable) console.log(`\n${table(seedsTable.header, seedsTable.rows)}`);
  const outcome = `MoQ (seed ${o.seed}): ${moqOutcome(results[0]!.moq, o.bits, kernels)}.`;
  console.log(`\n${outcome}`);

  const first = results[0]!;
  writeFileSync(resolve(o.report), renderReport({
    title: 'edge-moq: MoQ against post-training quantization on MNIST',
    setup,
    results: resultsTable,
    notes: [outcome],
    ...(seedsTable ? { seeds: seedsTable } : {}),
    runs: { full: first.full, moq: first.moq, ptq: first.ptq },
    histogramWeight: HISTOGRAM_WEIGHT,
    steps: o.steps,
    startBits: o.startBits,
  }));
  console.log(`report: ${o.report} (bits and blend ratio over steps, accuracy curves, ${HISTOGRAM_WEIGHT} histogram)`);
  return 0;
}
