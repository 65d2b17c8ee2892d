import { readFileSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { relative } from 'node:path';
import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

// Tests run against the built packages (npm test runs `tsc -b` first), so an end-to-end test
// starts exactly what `npm start` starts.
//
// One pool of workers for every file. Most files make their own data dir, their own ports (port 0, or
// test/src/ports.ts's freePort, below the ephemeral range, for a child process to bind), their own NATS
// nodes and fake services, or namespace what they share by unique names (Mosquitto topics and client
// ids); most of their time is spent waiting on child processes, sockets and timers, not on the CPU, so
// they run several at a time even on 2 cores (vitest's default there is ONE worker).
// JUNCTION_TEST_WORKERS sets how many (default: cores + 2, at least 4; test/README.md has the
// measurements behind it).
//
// EXCLUSIVE: the files that share the machine's PostgreSQL (127.0.0.1:5432, database `test`): a logical
// replication slot is created only once every open transaction has ended, and the sink tests hold table
// locks and terminate backends, so these files must not overlap each other. Each takes its turn with
// `await holdExclusive('postgres')` (test/src/exclusive.ts; the turn keeper is test/global-setup.ts) and
// runs beside the other files; the sequencer spreads them through the run so they seldom wait.
const EXCLUSIVE = [
  'connectors/postgres/test/',
  'connectors/postgres-cdc/test/',
  'test/test/connect-postgres-e2e.test.ts',
  'test/test/connect-postgres-cdc-e2e.test.ts',
];
const isExclusive = (rel: string) => EXCLUSIVE.some((p) => rel.startsWith(p));

// Wall time is bounded by how the files pack into the workers: a long file that starts late ends the run
// alone. vitest starts the files that took longest last time first (its results cache in
// node_modules/.vite), but a fresh clone or CI has no cache, and with a partial cache (after a run of a
// few files) its order is mixed. FILE_SECONDS holds the longest files' durations from a full run on a
// quiet 2-core machine with 4 workers (`vitest run --reporter=json`, 2026-12-07; test/README.md): a file
// the cache does not know is ranked by its entry here, else as a DEFAULT_SECONDS file; longest first,
// then larger first. Entries that go stale cost only packing.
const FILE_SECONDS: Record<string, number> = {
  'core/cluster/test/conformance.test.ts': 147,
  'test/test/stations-fd-limit.test.ts': 88,
  'connectors/s3/test/conformance.test.ts': 85,
  'core/cluster/test/differences.test.ts': 79,
  'test/test/plugin-authoring-e2e.test.ts': 76,
  'core/connect/test/wedge-shared.test.ts': 56,
  'core/connect/test/wedge-thread.test.ts': 53,
  'test/test/cluster-partition.test.ts': 48,
  'test/test/connect-s3-outage.test.ts': 43,
  'test/test/cluster-handover.test.ts': 36,
  'test/test/cluster-connect.test.ts': 34,
  'test/test/connect-s3-roundtrip.test.ts': 31,
  'test/test/crash.test.ts': 31,
  'test/test/client-tarball-e2e.test.ts': 29,
  'test/test/cluster-source.test.ts': 26,
  'test/test/cluster-kill.test.ts': 25,
  'test/test/connect-s3-multipart-kill.test.ts': 25,
  'connectors/snowflake/test/conformance.test.ts': 24,
  'ui/test/dashboard.test.ts': 23,
  'core/cluster/test/startup.test.ts': 21,
  'test/test/cluster-start.test.ts': 19,
  'test/test/connect-scale-e2e.test.ts': 19,
  'connectors/s3/test/s3-sink.test.ts': 19,
  'cli/test/cli.test.ts': 17,
  'test/test/connect-e2e.test.ts': 17,
  'test/test/connect-s3-e2e.test.ts': 17,
  'test/test/connect-wedge-e2e.test.ts': 17,
  'test/test/schemas-e2e.test.ts': 17,
  'cli/test/apply.test.ts': 16,
  'registry/test/install.test.ts': 16,
  'core/cluster/test/leaderless.test.ts': 16,
  'connectors/snowflake/test/snowflake-sink.test.ts': 16,
  'core/broker/test/log/file-log.test.ts': 16,
  'cli/test/auth.test.ts': 15,
  'core/server/test/auth.test.ts': 15,
  'core/connect/test/shared-pool.test.ts': 14,
  'core/broker/test/log/file-log-damage.test.ts': 14,
  'cli/test/validate.test.ts': 13,
  'test/test/connect-warehouses-e2e.test.ts': 13,
  'core/broker/test/embedded-conformance-lru.test.ts': 13,
  'core/broker/test/embedded-conformance.test.ts': 13,
  'connectors/s3-source/test/s3-source.test.ts': 13,
  'core/broker/test/embedded/recovery-matrix.test.ts': 13,
  'cli/test/plugins-authoring.test.ts': 12,
};
const DEFAULT_SECONDS = 10;

class LongestFirstSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const root = this.ctx.config.root;
    const key = (f: TestSpecification) => {
      const rel = relative(root, f.moduleId);
      const cached = this.ctx.cache.getFileTestResults(`${f.project.name}:${rel}`);
      const ms = cached && Number.isFinite(cached.duration) ? cached.duration : (FILE_SECONDS[rel] ?? DEFAULT_SECONDS) * 1000;
      let size = 0;
      try {
        size = statSync(f.moduleId).size;
      } catch {
        // gone since it was listed: vitest reports it
      }
      return { group: f.project.config.sequence.groupOrder, project: f.project.name, ms, size };
    };
    const keys = new Map(files.map((f) => [f, key(f)]));
    const sorted = [...files].sort((a, b) => {
      const x = keys.get(a)!;
      const y = keys.get(b)!;
      if (x.group !== y.group) return x.group - y.group;
      if (x.project !== y.project) return x.project < y.project ? -1 : 1;
      return y.ms - x.ms || y.size - x.size;
    });
    // The files that take turns on PostgreSQL go out spread over the first part of the run, while the
    // long files run, instead of side by side at its end where they would wait for each other.
    const turns = sorted.filter((f) => isExclusive(relative(root, f.moduleId)));
    for (const f of turns) {
      const source = readFileSync(f.moduleId, 'utf8');
      if (!source.includes("await holdExclusive('postgres')"))
        throw new Error(
          `${relative(root, f.moduleId)} uses the shared PostgreSQL: it must start with await holdExclusive('postgres') (test/src/exclusive.ts)`,
        );
    }
    const rest = sorted.filter((f) => !turns.includes(f));
    const step = (rest.length * 0.6) / (turns.length + 1);
    turns.forEach((f, i) => rest.splice(Math.round((i + 1) * step) + i, 0, f));
    return rest;
  }
}

const workers = Number(process.env.JUNCTION_TEST_WORKERS) || Math.max(4, availableParallelism() + 2);

export default defineConfig({
  test: {
    globals: false,
    include: ['**/test/**/*.test.ts'],
    exclude: ['**/node_modules/**', '**/dist/**'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    maxWorkers: workers,
    globalSetup: ['./test/global-setup.ts'],
    sequence: { sequencer: LongestFirstSequencer },
  },
});
