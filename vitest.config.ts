import { statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { relative } from 'node:path';
import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

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

// Wall time is bounded by how the files pack into the workers: a long file that starts late ends the run
// alone. vitest starts the files that took longest last time first (its results cache in
// node_modules/.vite), but a fresh clone or CI has no cache, and with a partial cache (after a run of a
// few files) its order is mixed: in a full run here core/cluster/test/conformance (174 s) and both wedge
// files (133 s each) started after 1,100 s of 1,307 and ended the run alone. FILE_SECONDS holds the
// longest files' durations from that run (`vitest run --reporter=json`, 3 workers, 2 cores, load 8-14;
// see test/README.md): a file the cache does not know is ranked by its entry here, else as a
// DEFAULT_SECONDS file; longest first, then larger first. Entries that go stale cost only packing.
// The wedge files' entries are that run's 133 s / 132 s scaled by what shorter stop waits saved in A/B
// runs at load 12-24 (test/README.md "Less work per file").
const FILE_SECONDS: Record<string, number> = {
  'test/test/plugin-authoring-e2e.test.ts': 188,
  'core/cluster/test/conformance.test.ts': 174,
  'connectors/s3/test/conformance.test.ts': 142,
  'test/test/stations-fd-limit.test.ts': 133,
  'core/connect/test/wedge-thread.test.ts': 103,
  'core/connect/test/wedge-shared.test.ts': 96,
  'test/test/connect-warehouses-e2e.test.ts': 94,
  'registry/test/cli.test.ts': 78,
  'registry/test/manage-routes.test.ts': 76,
  'core/cluster/test/differences.test.ts': 75,
  'registry/test/install.test.ts': 70,
  'test/test/cluster-connect.test.ts': 61,
  'test/test/connect-e2e.test.ts': 56,
  'test/test/crash.test.ts': 54,
  'cli/test/cli.test.ts': 54,
  'core/broker/test/log/file-log.test.ts': 53,
  'test/test/client-tarball-e2e.test.ts': 51,
  'test/test/connect-s3-roundtrip.test.ts': 50,
  'test/test/connect-s3-outage.test.ts': 50,
  'test/test/connect-s3-multipart-kill.test.ts': 50,
  'ui/test/dashboard.test.ts': 48,
  'test/test/cluster-partition.test.ts': 47,
  'test/test/cluster-source.test.ts': 47,
  'core/broker/test/embedded-conformance-lru.test.ts': 45,
  'test/test/connect-s3-e2e.test.ts': 43,
  'core/server/test/auth.test.ts': 41,
  'test/test/connect-scale-e2e.test.ts': 41,
  'core/broker/test/embedded-conformance.test.ts': 39,
  'cli/test/apply.test.ts': 38,
  'connectors/s3/test/s3-sink.test.ts': 37,
  'cli/test/plugins-authoring.test.ts': 35,
  'test/test/cluster-handover.test.ts': 32,
  'core/server/test/http-hardening.test.ts': 30,
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
    return [...files].sort((a, b) => {
      const x = keys.get(a)!;
      const y = keys.get(b)!;
      if (x.group !== y.group) return x.group - y.group;
      if (x.project !== y.project) return x.project < y.project ? -1 : 1;
      return y.ms - x.ms || y.size - x.size;
    });
  }
}

const workers = Number(process.env.JUNCTION_TEST_WORKERS) || Math.max(3, availableParallelism() + 1);

export default defineConfig({
  test: {
    globals: false,
    exclude: ['**/node_modules/**', '**/dist/**'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    sequence: { sequencer: LongestFirstSequencer },
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
