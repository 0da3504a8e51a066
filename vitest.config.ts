import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 180_000,
    // Integration tests start real pools and servers: run files one at a time on a 2-core machine.
    fileParallelism: false,
    pool: 'forks',
  },
});
