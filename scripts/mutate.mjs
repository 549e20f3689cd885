// Mutation testing, one module at a time, each against its own tests only (see
// stryker.config.mjs). Prints a table of killed mutants per module, over all mutants and over
// the non-string ones (a mutated error message is not a change in behaviour, and the tests
// assert messages by their facts, not by whole text).
//
//   node scripts/mutate.mjs                  every module
//   node scripts/mutate.mjs config safetensors
//   node scripts/mutate.mjs --incremental    reuse earlier results for unchanged code and tests
//   node scripts/mutate.mjs --report         only print the table from the last reports
//   node scripts/mutate.mjs --survivors      also list each undetected non-string mutant
//   node scripts/mutate.mjs --concurrency=2  test runners per module (default 1: machines are shared)

import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

const MODULES = [
  { name: 'config', mutate: ['src/config.ts'], tests: ['test/config.test.ts'] },
  { name: 'kernel-plan', mutate: ['src/kernel-plan.ts'], tests: ['test/kernel-plan-mutants.test.ts'] },
  { name: 'safetensors', mutate: ['src/formats/safetensors.ts'], tests: ['test/safetensors.test.ts', 'test/hostile-headers.test.ts'] },
  { name: 'onnx-proto', mutate: ['src/formats/onnx/proto.ts'], tests: ['test/onnx-proto-mutants.test.ts'] },
  { name: 'onnx', mutate: ['src/formats/onnx/*.ts', '!src/formats/onnx/proto.ts'], tests: ['test/onnx-mutants.test.ts'] },
  { name: 'tfjs-views', mutate: ['src/formats/tfjs/channel-axis.ts', 'src/formats/tfjs/weights-view.ts'], tests: ['test/tfjs-mutants.test.ts'] },
  {
    name: 'tfjs',
    mutate: ['src/formats/tfjs/*.ts', '!src/formats/tfjs/channel-axis.ts', '!src/formats/tfjs/weights-view.ts'],
    tests: ['test/tfjs-format-mutants.test.ts'],
  },
  { name: 'quantizer', mutate: ['src/quantizer.ts'], tests: ['test/quantizer.test.ts', 'test/quantizer-mutants.test.ts'] },
];

const REPORTS = 'reports/mutation';
const args = process.argv.slice(2);
const incremental = args.includes('--incremental');
const reportOnly = args.includes('--report');
const listSurvivors = args.includes('--survivors');
const concurrency = Number(args.find((a) => a.startsWith('--concurrency='))?.slice('--concurrency='.length) ?? 1);
const names = args.filter((a) => !a.startsWith('--'));
const unknown = names.filter((n) => !MODULES.some((m) => m.name === n));
if (unknown.length > 0) {
  console.error(`unknown module ${unknown.join(', ')}; known: ${MODULES.map((m) => m.name).join(', ')}`);
  process.exit(2);
}
const selected = names.length > 0 ? MODULES.filter((m) => names.includes(m.name)) : MODULES;

// Stryker 10 declares Node >= 22 and its command line refuses Node 20, which this project runs
// on; its runner works on Node 20, so it is started through its module (the path bypasses the
// package's exports map, which would load the command line and its check).
const { Stryker } = await import(pathToFileURL('node_modules/@stryker-mutator/core/dist/src/stryker.js').href);

// The safetensors fuzz campaign runs once per mutant: a short campaign there, as each mutant is
// meant to be caught by a unit test (the fuzz stays at full length in npm test).
process.env.EDGE_MOQ_FUZZ_RUNS ??= '20';

mkdirSync(REPORTS, { recursive: true });
const seconds = new Map();
if (!reportOnly) {
  for (const m of selected) {
    const started = Date.now();
    const stryker = new Stryker({
      configFile: 'stryker.config.mjs',
      mutate: m.mutate,
      testFiles: m.tests,
      // Per module, so that modules can be run side by side (node scripts/mutate.mjs a & node scripts/mutate.mjs b).
      jsonReporter: { fileName: `${REPORTS}/${m.name}.json` },
      tempDirName: `.stryker-tmp/${m.name}`,
      concurrency,
      ...(incremental ? { incremental: true, incrementalFile: `${REPORTS}/${m.name}.incremental.json` } : {}),
    });
    await stryker.runMutationTest();
    seconds.set(m.name, (Date.now() - started) / 1000);
  }
}

// Timeouts count as killed (the mutant made the tests hang), as Stryker counts them; mutants
// that cannot compile or that no test reaches are excluded, as in Stryker's own score.
/** @typedef {{ status: string; mutatorName: string; static?: boolean; replacement?: string; location: { start: { line: number; column: number } } }} Mutant */
/** @param {Mutant[]} mutants */
function score(mutants) {
  const detected = mutants.filter((x) => x.status === 'Killed' || x.status === 'Timeout').length;
  const undetected = mutants.filter((x) => x.status === 'Survived' || x.status === 'NoCoverage').length;
  const total = detected + undetected;
  return { detected, total, percent: total === 0 ? 100 : (100 * detected) / total };
}

/** @type {string[][]} */
const rows = [];
for (const m of selected) {
  const file = `${REPORTS}/${m.name}.json`;
  if (!existsSync(file)) continue;
  const report = JSON.parse(readFileSync(file, 'utf8'));
  /** @type {Record<string, { mutants: Mutant[] }>} */
  const files = report.files;
  const mutants = Object.values(files).flatMap((f) => f.mutants);
  const all = score(mutants);
  const nonString = score(mutants.filter((x) => x.mutatorName !== 'StringLiteral'));
  if (listSurvivors) {
    for (const [path, f] of Object.entries(files)) {
      for (const x of f.mutants) {
        if (x.mutatorName === 'StringLiteral' || (x.status !== 'Survived' && x.status !== 'NoCoverage')) continue;
        console.log(`${path}:${x.location.start.line}:${x.location.start.column} ${x.status}${x.static ? ' (static)' : ''} ${x.mutatorName}: ${JSON.stringify(x.replacement)}`);
      }
    }
  }
  const time = seconds.has(m.name) ? `${Math.round(seconds.get(m.name))} s` : '';
  // Stryker's vitest runner reports module-level (static) mutants that plain vitest kills as
  // survivors: shown apart so they can be checked by hand.
  const staticUndetected = mutants.filter((x) => x.static && x.mutatorName !== 'StringLiteral' && (x.status === 'Survived' || x.status === 'NoCoverage')).length;
  rows.push([m.name, `${nonString.detected} / ${nonString.total}`, `${nonString.percent.toFixed(1)}%`, `${all.detected} / ${all.total}`, `${all.percent.toFixed(1)}%`, String(staticUndetected), time]);
}
const header = ['module', 'non-string killed', '%', 'all killed', '%', 'static survivors', 'time'];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
/** @param {string[]} r */
const line = (r) =>
  r
    .map((c, i) => c.padEnd(widths[i]))
    .join('  ')
    .trimEnd();
console.log(`\n${line(header)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}\n${rows.map(line).join('\n')}`);
