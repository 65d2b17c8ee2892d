/**
 * `junction plugins new`: the files of a plugin project that lives outside the Junction repository.
 * The project depends on the SDK through the tarball `junction plugins sdk` writes (copied into
 * `vendor/`, a devDependency `file:` path) and peer-depends on `@junction/sdk-connector@^1`, so a broker
 * that installs it provides its own SDK; its other dependencies (typescript, vitest, @types/node) come
 * from the npm registry. `npm install && npm test` builds it and runs the SDK's conformance kit on it.
 */
import { CliError } from './errors.js';

/** The kinds `plugins new` scaffolds. */
export const SCAFFOLD_KINDS = ['sink', 'source', 'transform'] as const;
export type ScaffoldKind = (typeof SCAFFOLD_KINDS)[number];

/** Codes of `plugins new` / `plugins sdk`. */
export const ScaffoldErrorCode = {
  /** The plugin name is not kebab-case (what the SDK's manifest requires). */
  PLUGIN_NAME_INVALID: 'PLUGIN_NAME_INVALID',
  /** A kind this SDK has no plugins of. */
  PLUGIN_KIND_UNSUPPORTED: 'PLUGIN_KIND_UNSUPPORTED',
  /** The target folder exists and is not empty. */
  DIR_NOT_EMPTY: 'DIR_NOT_EMPTY',
  /** An SDK or client package to pack is not there or not built. */
  PACKAGE_NOT_FOUND: 'PACKAGE_NOT_FOUND',
  /** npm could not pack it. */
  PACK_FAILED: 'PACK_FAILED',
} as const;

const NAME_RE = /^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$/;

/** Checks a plugin name and kind; throws CliError PLUGIN_NAME_INVALID / PLUGIN_KIND_UNSUPPORTED. */
export function checkScaffoldInput(name: string, kind: string): ScaffoldKind {
  if (!NAME_RE.test(name) || name.length > 64) {
    throw new CliError(
      ScaffoldErrorCode.PLUGIN_NAME_INVALID,
      `plugin name ${JSON.stringify(name)} must be kebab-case (a-z, 0-9, "-"), 1-64 characters, starting with a letter`,
    );
  }
  if (!(SCAFFOLD_KINDS as readonly string[]).includes(kind)) {
    throw new CliError(
      ScaffoldErrorCode.PLUGIN_KIND_UNSUPPORTED,
      `--kind must be one of ${SCAFFOLD_KINDS.join(', ')} (got ${JSON.stringify(kind)})`,
    );
  }
  return kind as ScaffoldKind;
}

export interface ScaffoldInput {
  name: string;
  kind: ScaffoldKind;
  /** The SDK tarball's file name in `vendor/`. */
  sdkTarball: string;
  /** The SDK's version (the peer range is `^<major>.0.0`). */
  sdkVersion: string;
}

/** The project's files, by path relative to the project folder. */
export function scaffoldFiles(input: ScaffoldInput): Record<string, string> {
  const { name, kind, sdkTarball, sdkVersion } = input;
  const major = sdkVersion.split('.')[0] ?? '1';
  const pkg = {
    name: `junction-connector-${name}`,
    version: '0.1.0',
    description: `A Junction ${kind} plugin: ${name}`,
    type: 'module',
    license: 'MIT',
    engines: { node: '>=20' },
    exports: { '.': { types: './dist/index.d.ts', default: './dist/index.js' }, './package.json': './package.json' },
    files: ['dist', 'README.md'],
    junction: { kind, entry: './dist/index.js' },
    scripts: {
      build: 'tsc -p tsconfig.json',
      test: 'tsc -p tsconfig.json && vitest run',
      prepack: 'tsc -p tsconfig.json',
    },
    peerDependencies: { '@junction/sdk-connector': `^${major}.0.0` },
    devDependencies: {
      '@junction/sdk-connector': `file:vendor/${sdkTarball}`,
      '@types/node': '^20.19.0',
      typescript: '^5.9.3',
      vitest: '^4.0.0',
    },
  };
  const tsconfig = {
    compilerOptions: {
      target: 'ES2023',
      lib: ['ES2023'],
      module: 'NodeNext',
      moduleResolution: 'NodeNext',
      strict: true,
      noUncheckedIndexedAccess: true,
      verbatimModuleSyntax: true,
      declaration: true,
      sourceMap: true,
      skipLibCheck: true,
      types: ['node'],
      rootDir: 'src',
      outDir: 'dist',
    },
    include: ['src'],
  };
  const files: Record<string, string> = {
    'package.json': JSON.stringify(pkg, null, 2) + '\n',
    'tsconfig.json': JSON.stringify(tsconfig, null, 2) + '\n',
    '.gitignore': 'node_modules/\ndist/\n*.tgz\n!vendor/*.tgz\n',
    'README.md': readme(input),
  };
  if (kind === 'sink') {
    files['src/config.ts'] = sinkConfig;
    files['src/index.ts'] = sinkIndex(name);
    files['test/conformance.test.ts'] = sinkTest;
  } else if (kind === 'source') {
    files['src/config.ts'] = sourceConfig;
    files['src/index.ts'] = sourceIndex(name);
    files['test/conformance.test.ts'] = sourceTest;
  } else {
    files['src/config.ts'] = transformConfig;
    files['src/index.ts'] = transformIndex(name);
    files['test/conformance.test.ts'] = transformTest;
  }
  return files;
}

const sinkConfig = `/** The config a user writes under \`config:\` in junction.yaml, checked by the broker before the plugin runs. */
import { hostPath, z } from '@junction/sdk-connector';

export const Config = z.strictObject({
  dir: hostPath(z.string().min(1)).describe('The folder messages are written to: <dir>/<station>/<partition>/<offset>.bin'),
  maxBytes: z.int().min(1).default(1_048_576).describe('A message value larger than this is dead-lettered'),
  // A secret field: never logged, never returned by the API. Mark yours with secret(...) too:
  // token: secret(z.string()).optional().describe('…'),
});
export type Config = z.output<typeof Config>;
`;

const sinkIndex = (name: string) => `/**
 * The ${name} sink: one file per message, <dir>/<station>/<partition>/<offset>.bin, holding the value's
 * bytes. A file is written whole (temp file, then rename), so a replay after a crash rewrites the same
 * file with the same bytes: each message is in the destination exactly once.
 */
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { deadLetter, defineSink, ErrorCode, JunctionError, ok, retry, stationIdSegment, type WriteResult } from '@junction/sdk-connector';
import { Config } from './config.js';

export { Config } from './config.js';

export default defineSink({
  name: '${name}',
  version: '0.1.0',
  sdk: '^1',
  description: 'Writes each message to a file of its own',
  exactlyOnce: true,
  config: Config,
  async open(config, ctx) {
    const written = ctx.metrics.counter('messages_written_total', 'messages written to files');
    ctx.logger.debug({ dir: config.dir }, '${name} sink opened');
    return {
      async write(batch, { signal }): Promise<WriteResult[]> {
        // A station deleted and created again is new data: its incarnation is part of the path.
        const folder = join(config.dir, encodeURIComponent(batch.station), stationIdSegment(batch.stationId), String(batch.partition));
        const results: WriteResult[] = [];
        for (const m of batch.messages) {
          // The runtime ignores the answers of an aborted write and sends the batch again.
          if (signal.aborted) throw new JunctionError(ErrorCode.TIMEOUT, 'the write was aborted', { retryable: true, cause: signal.reason });
          if (m.value.byteLength > config.maxBytes) {
            results.push(deadLetter('MESSAGE_TOO_LARGE', \`\${m.value.byteLength} bytes, more than maxBytes \${config.maxBytes}\`));
            continue;
          }
          try {
            await mkdir(folder, { recursive: true });
            const file = join(folder, \`\${String(m.offset).padStart(16, '0')}.bin\`);
            await writeFile(\`\${file}.tmp\`, m.value);
            await rename(\`\${file}.tmp\`, file);
            written.inc();
            results.push(ok());
          } catch (err) {
            // A folder that cannot be written now may be fixed by the operator: try again later.
            results.push(retry(\`cannot write to \${folder}: \${(err as NodeJS.ErrnoException).code ?? (err as Error).message}\`, { delayMs: 1000 }));
          }
        }
        return results;
      },
      async close() {},
    };
  },
});
`;

const sinkTest = `/** The SDK's conformance kit on this sink: what every Junction sink must do, checked against a temp folder. */
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'vitest';
import { sinkConformanceSuite } from '@junction/sdk-connector/testing';
import plugin from '../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'sink-kit-'));
// A regular file where the sink expects a folder: writes under it fail, the sink must answer retry().
const blocked = join(mkdtempSync(join(tmpdir(), 'sink-kit-blocked-')), 'a-file');
writeFileSync(blocked, 'not a folder');

function values(folder: string): Buffer[] {
  return readdirSync(folder, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith('.bin'))
    .map((e) => readFileSync(join(e.parentPath, e.name)));
}

sinkConformanceSuite({ describe, it }, {
  plugin,
  config: { dir },
  readBack: async () => values(dir),
  deadLetter: { value: 'x'.repeat(2048), config: { dir, maxBytes: 1024 } },
  retry: { config: { dir: join(blocked, 'sub') } },
});
`;

const sourceConfig = `/** The config a user writes under \`config:\` in junction.yaml, checked by the broker before the plugin runs. */
import { z } from '@junction/sdk-connector';

export const Config = z.strictObject({
  count: z.int().min(1).default(100).describe('How many messages to produce before the source is exhausted'),
  batchSize: z.int().min(1).max(10_000).default(10).describe('Messages per batch'),
  prefix: z.string().default('message').describe('Each value is "<prefix> <n>"'),
});
export type Config = z.output<typeof Config>;
`;

const sourceIndex = (name: string) => `/**
 * The ${name} source: counts from 1 to \`count\`, a message "<prefix> <n>" each, in batches. The
 * position is the last number produced, so a restart resumes exactly after it; each message's msgId
 * is its number, so a replayed batch is not stored twice.
 */
import { defineSource, type SourceBatch } from '@junction/sdk-connector';
import { Config } from './config.js';

export { Config } from './config.js';

type Position = { n: number };

export default defineSource<typeof Config, Position>({
  name: '${name}',
  version: '0.1.0',
  sdk: '^1',
  description: 'Counts from 1 to count, one message per number',
  config: Config,
  async open(config, ctx) {
    let closed = false;
    const start = ctx.position?.n ?? 0;
    const encoder = new TextEncoder();
    return {
      async *read(signal: AbortSignal): AsyncIterable<SourceBatch<Position>> {
        for (let n = start; n < config.count && !signal.aborted && !closed; ) {
          const last = Math.min(config.count, n + config.batchSize);
          const messages = [];
          for (let i = n + 1; i <= last; i++) messages.push({ value: encoder.encode(\`\${config.prefix} \${i}\`), key: String(i % 8), msgId: String(i) });
          n = last;
          yield { messages, position: { n } };
        }
      },
      async commit() {},
      async close() {
        closed = true;
      },
    };
  },
});
`;

const sourceTest = `/** The SDK's conformance kit on this source. */
import { describe, it } from 'vitest';
import { sourceConformanceSuite } from '@junction/sdk-connector/testing';
import plugin from '../src/index.js';

sourceConformanceSuite({ describe, it }, { plugin, config: { count: 50, batchSize: 5 }, resume: 'exact' });
`;

const transformConfig = `/** The step's config: what a user writes under \`config:\` of \`{ type: plugin, plugin: <name> }\` in \`transforms:\`. */
import { z } from '@junction/sdk-connector';

export const Config = z.strictObject({
  field: z.string().min(1).default('tag').describe('The top-level field of a JSON object value the tag is written to'),
  value: z.string().default('tagged').describe('The text written to the field'),
  dropEmpty: z.boolean().default(true).describe('Drop messages whose value is empty (the sink never sees them)'),
});
export type Config = z.output<typeof Config>;
`;

const transformIndex = (name: string) => `/**
 * The ${name} transform: writes \`value\` into the field \`field\` of each JSON object value, drops empty
 * values (\`dropEmpty\`), and fails a value that is not a JSON object (the connector's error policy then
 * dead-letters it or fails the task). A message that already carries the tag is answered as given: its
 * bytes stay untouched. Deterministic, so a replay gives the same bytes (exactly-once sinks rely on it).
 */
import { defineTransform, type TransformMessage } from '@junction/sdk-connector';
import { Config } from './config.js';

export { Config } from './config.js';

export default defineTransform({
  name: '${name}',
  version: '0.1.0',
  sdk: '^1',
  description: 'Writes a tag into each JSON object value',
  config: Config,
  open(config, ctx) {
    const tagged = ctx.metrics.counter('messages_tagged_total', 'values the tag was written to');
    const decoder = new TextDecoder('utf-8', { fatal: true });
    const encoder = new TextEncoder();
    return {
      transform(m: TransformMessage) {
        if (m.value.byteLength === 0) return config.dropEmpty ? null : m;
        const v: unknown = JSON.parse(decoder.decode(m.value));
        if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('the value is not a JSON object');
        if ((v as Record<string, unknown>)[config.field] === config.value) return m;
        tagged.inc();
        // A new message: never change the one given (the runtime keeps it for dead letters).
        return { ...m, value: encoder.encode(JSON.stringify({ ...v, [config.field]: config.value })) };
      },
    };
  },
});
`;

const transformTest = `/** The SDK's transform kit on this plugin, and what it makes of a few messages, byte for byte. */
import { describe, expect, it } from 'vitest';
import { assertConformance, fakeContext, runTransformConformance } from '@junction/sdk-connector/testing';
import plugin from '../src/index.js';

const enc = (s: string) => new TextEncoder().encode(s);
const msg = (value: string) => ({ value: enc(value), headers: { 'content-type': 'application/json' }, timestamp: 1_700_000_000_000 });

describe('the transform', () => {
  it('passes the conformance kit', async () => {
    assertConformance(
      await runTransformConformance({
        plugin,
        config: { field: 'env', value: 'prod' },
        messages: [msg('{"id":1}'), msg('{"id":2,"env":"prod"}'), msg('')],
        failing: [msg('[1,2]'), msg('not json')],
      }),
    );
  });

  it('tags, keeps, drops and fails', async () => {
    const t = await plugin.open(plugin.config.parse({ field: 'env', value: 'prod' }), fakeContext());
    const out = await t.transform(msg('{"id":1}'));
    expect(new TextDecoder().decode(out!.value)).toBe('{"id":1,"env":"prod"}');
    const same = msg('{"id":2,"env":"prod"}');
    expect(await t.transform(same)).toBe(same);
    expect(await t.transform(msg(''))).toBeNull();
    expect(() => t.transform(msg('[1]'))).toThrow('not a JSON object');
  });
});
`;

function readme({ name, kind, sdkTarball }: ScaffoldInput): string {
  return `# junction-connector-${name}

A Junction ${kind} plugin, scaffolded by \`junction plugins new ${name} --kind ${kind}\`.

\`\`\`sh
npm install        # the SDK comes from vendor/${sdkTarball}; typescript and vitest from the registry
npm test           # builds, then runs the SDK's conformance kit on the plugin (test/conformance.test.ts)
junction plugins install .     # into a running broker: usable at once
\`\`\`

Then name it in \`junction.yaml\` (the broker applies the file when it changes):

\`\`\`yaml
${yamlOf(name, kind)}
\`\`\`

- \`src/config.ts\`: the config schema (zod, from the SDK's \`z\`); mark secret fields with \`secret(...)\`.
- \`src/index.ts\`: the plugin (\`define${kind === 'sink' ? 'Sink' : kind === 'source' ? 'Source' : 'Transform'}\`), default-exported.
- \`package.json\`: \`junction\` says the kind and the entry; the SDK is a **peer** dependency, so the
  broker that installs the plugin provides its own SDK. The devDependency on \`vendor/${sdkTarball}\`
  is for building and testing here (once the SDK is on a registry, use \`^1.0.0\` instead).
- \`npm pack\` (or \`junction plugins install <this folder>\`) ships \`dist/\`: it builds first (\`prepack\`).
`;
}

function yamlOf(name: string, kind: ScaffoldKind): string {
  if (kind === 'transform') {
    return `connectors:
  - name: orders-out
    plugin: file
    station: orders
    config:
      dir: /var/lib/junction/out
    transforms:
      - type: plugin
        plugin: ${name}
        config:
          field: env
          value: prod`;
  }
  const rest =
    kind === 'sink' ? 'station: orders\n    config:\n      dir: /var/lib/junction/out' : 'station: numbers\n    config:\n      count: 1000';
  return `connectors:\n  - name: my-${name}\n    plugin: ${name}\n    ${rest}`;
}
