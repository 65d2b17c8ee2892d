import { defineConfig } from 'vitest/config';

// Tests run against the built packages (npm test runs `tsc -b` first), so an end-to-end test
// starts exactly what `npm start` starts.
export default defineConfig({
  test: {
    globals: false,
    include: ['**/test/**/*.test.ts'],
    exclude: ['**/node_modules/**', '**/dist/**'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
