// Mutation testing (StrykerJS, vitest runner). Not part of `npm test`: `npm run mutate` runs
// scripts/mutate.mjs, which mutates one module at a time with only that module's own test
// files (--mutate, --testFiles), so a score says how well those tests guard that module.
// Stryker's vitest runner counts a test file that fails to load as "survived" (stryker-js#6150):
// check survivors under plain vitest before writing a test for them.

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: 'vitest',
  plugins: ['@stryker-mutator/vitest-runner'],
  vitest: { configFile: 'vitest.config.ts', related: false },
  coverageAnalysis: 'perTest',
  // The machine running this is usually shared; one runner keeps it usable.
  concurrency: 1,
  timeoutMS: 30_000,
  reporters: ['json', 'clear-text', 'progress-append-only'],
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  clearTextReporter: { allowColor: false, logTests: false, reportScoreTable: true, reportMutants: false },
  tempDirName: '.stryker-tmp',
  cleanTempDir: 'always',
  // Copying dist/, build/ and the app's outputs into the sandbox is slow and the mutated modules
  // are read from src/ by the tests.
  ignorePatterns: ['dist', 'reports', 'moq-models', 'app/dist', 'docs/api'],
  thresholds: { high: 90, low: 80, break: null },
};
