import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 180_000,
    // Files run side by side: most of a file's time is spent waiting on servers, timers and child processes,
    // so four at once keep two cores busy. Every test holds beside busy loops too (npm run test:load).
    fileParallelism: true,
    pool: 'forks',
    poolOptions: { forks: { minForks: 1, maxForks: 4 } },
  },
});
