import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/report-missing-runtimes.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Suites drive real runtimes (workers, GPUs, child processes): keep them in separate forks.
    pool: 'forks',
  },
});
