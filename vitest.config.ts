import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    reporters: ['default', './test/summary-reporter.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Media and WebRTC tests are CPU-heavy; two cores, so at most two files at once.
    maxWorkers: 2,
  },
});
