import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

// Tests run against the built packages (npm test runs `tsc -b` first), so an end-to-end test
// starts exactly what `npm start` starts.
//
// Two projects, run one after the other:
// - `parallel`: every file that makes its own data dir, ephemeral ports (port 0 / freePort), its own
//   NATS nodes and fake services, or namespaces what it shares by unique names (Mosquitto topics and
//   client ids). Most of their time is spent waiting on child processes, sockets and timers, not on the
//   CPU, so they run several at a time even on 2 cores (vitest's default there is ONE worker: the
//   suite ran file after file). JUNCTION_TEST_WORKERS sets how many (default: cores + 1, at least 3).
// - `serial`: the files that share the machine's PostgreSQL (127.0.0.1:5432, database `test`): a
//   logical replication slot is created only once every open transaction has ended, and the sink
//   tests hold table locks and terminate backends, so these files must not overlap.
const SERIAL = [
  'connectors/postgres/test/**/*.test.ts',
  'connectors/postgres-cdc/test/**/*.test.ts',
  'test/test/connect-postgres-e2e.test.ts',
  'test/test/connect-postgres-cdc-e2e.test.ts',
];

const workers = Number(process.env.JUNCTION_TEST_WORKERS) || Math.max(3, availableParallelism() + 1);

export default defineConfig({
  test: {
    globals: false,
    exclude: ['**/node_modules/**', '**/dist/**'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    projects: [
      {
        extends: true,
        test: {
          name: 'parallel',
          include: ['**/test/**/*.test.ts'],
          exclude: ['**/node_modules/**', '**/dist/**', ...SERIAL],
          maxWorkers: workers,
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          name: 'serial',
          include: SERIAL,
          maxWorkers: 1,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
