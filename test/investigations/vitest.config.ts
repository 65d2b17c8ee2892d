import { defineConfig } from 'vitest/config';

// Investigations run by hand, never by `npm test`: see each file's header.
export default defineConfig({
  test: { globals: false, include: ['test/investigations/*.investigation.ts'], testTimeout: 180_000, hookTimeout: 120_000, pool: 'forks' },
});
