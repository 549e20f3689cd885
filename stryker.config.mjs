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
  clearTextReporter: { allowColor: false, logTests: false, reportScoreTable: true, reportMutants: false },
  // scripts/mutate.mjs gives each module its own folder under this one and its own report.
  tempDirName: '.stryker-tmp',
  cleanTempDir: 'always',
  // The tests under mutation import src/ (and build/'s .wasm): the built outputs are not needed in
  // the sandbox, and copying them is slow.
  ignorePatterns: ['dist', 'reports', '.stryker-tmp', 'moq-models', 'app/dist', 'docs/api'],
  thresholds: { high: 90, low: 80, break: null },
};
