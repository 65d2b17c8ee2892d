/**
 * The sink conformance kit: behaviour every sink must show, whatever its destination. It runs in any
 * test runner (it depends on none): `runSinkConformance(options)` resolves with one result per check.
 *
 * Messages the kit writes carry their identity in their value — JSON text
 * `{"junctionConformance":<run id>,"station":…,"partition":…,"offset":…,"text":…}` — so `readBack`
 * only has to return the values the destination holds, and the kit counts how often each message
 * arrived. Each check writes to stations of its own (`kit-<run id>-<check>`), so checks never see each
 * other's messages and the destination needs no clearing between them.
 */
import { checkPlugin } from '../plugin.js';
import type { SinkPlugin } from '../plugin.js';
import { configJsonSchema, redact, secretPaths, validateConfig } from '../config.js';
import { isRetryable } from '../errors.js';
import { checkWriteResults, type WriteResult } from '../results.js';
import type { Sink, SinkBatch, SinkContext, SinkMessage } from '../types.js';
import { fakeContext } from './fake-context.js';
import { SINK_WEDGE_CHECKS, wedgeCheckNotApplicable, wedgeChecks, type SinkWedgeCheck, type SinkWedgeOptions } from './sink-wedge.js';
import {
  type CheckResult,
  type NotApplicable,
  CheckFailed,
  checkConnectionWorks,
  cloneProblem,
  describeError,
  fail,
  notApplicable,
  randomId,
  runCheck,
  within,
  range,
  valuesAt,
} from './util.js';
import { EXACTLY_ONCE_CHECKS, exactlyOnceChecks, type ExactlyOnceOptions } from './sink-exactly-once.js';
import { SINK_AUTHORING_CHECKS, authoringChecks, secretsCheckNotApplicable } from './sink-authoring.js';

export const SINK_CHECKS = [
  'manifest',
  'open-close',
  'close-twice',
  'check-connection',
  'single-message',
  'many-messages',
  'partitions-and-stations',
  'concurrent-partitions',
  'dead-letter',
  'retry',
  'replay-same-batch',
  'replay-overlapping',
  'aborted-signal',
  // What authors get wrong (sink-authoring.ts): results per message, replays and aborts on one sink, secrets in logs.
  ...SINK_AUTHORING_CHECKS,
  // The wedge checks (sink-wedge.ts): unusable and unreachable destinations, a stalled write, close after failure.
  ...SINK_WEDGE_CHECKS,
  ...EXACTLY_ONCE_CHECKS,
] as const;
export type SinkCheck = (typeof SINK_CHECKS)[number];

/** A message the sink must dead-letter, e.g. one its test config declares poison. */
export interface DeadLetterCase {
  value: Uint8Array | string;
  key?: string;
  headers?: Record<string, string>;
  /** The config to open the sink with for this check (raw); default: the main `config`. */
  config?: unknown;
}

/**
 * How to make the sink answer `retry()`: a config under which its destination fails (a closed port),
 * and/or `breakDestination`, called after open and before the write, which breaks the destination
 * and may return a function that heals it. The kit then reopens the sink with the main config,
 * writes the retried messages again and expects `ok()` for each.
 */
export type RetryCase = { config: unknown; breakDestination?: BreakDestination } | { config?: unknown; breakDestination: BreakDestination };
export type BreakDestination = (target: { station: string; partition: number }) => Promise<(() => Promise<void>) | void>;

export interface SinkConformanceOptions extends SinkWedgeOptions, ExactlyOnceOptions {
  plugin: SinkPlugin;
  /** The raw config (as a user writes it), parsed through the plugin's schema. */
  config: unknown;
  /**
   * Every message value the destination holds now (as bytes or text), from all writes so far. Without
   * it, checks still verify the answers but report the destination as not verified, and the replay
   * checks are not applicable.
   */
  readBack?: () => Promise<Iterable<Uint8Array | string>>;
  /** Missing means not applicable, reported as such. */
  deadLetter?: DeadLetterCase | NotApplicable;
  /** Missing means not applicable, reported as such. */
  retry?: RetryCase | NotApplicable;
  /** Messages in the `many-messages` batch. Default 200. */
  manyMessages?: number;
  /** Bytes of text per message value (besides its identity). Default 64. */
  valueBytes?: number;
  /** Longest any single plugin call (open, write, close, …) may take. Default 10 000 ms. */
  timeoutMs?: number;
  /** A context per opened sink. Default: a fresh {@link fakeContext}. */
  context?: () => SinkContext;
  /** Run only these checks (in the kit's order). */
  checks?: readonly SinkCheck[];
}

/**
 * A batch as the runtime hands it to a sink that declares `keepsValues: false`: its values in one buffer
 * of their own, which `takeBack` detaches (transfers away) once the write answered ok for every message,
 * as the runtime reuses that memory for later batches. A sink that reads a value after its write then
 * reads zero bytes, and the checks that read the destination back fail.
 */
function lend(batch: SinkBatch): { batch: SinkBatch; takeBack(): void } {
  let total = 0;
  for (const m of batch.messages) total += m.value.byteLength;
  const buf = new ArrayBuffer(total);
  let pos = 0;
  const messages = batch.messages.map((m) => {
    const value = new Uint8Array(buf, pos, m.value.byteLength);
    value.set(m.value);
    pos += m.value.byteLength;
    return { ...m, value };
  });
  return { batch: { ...batch, messages }, takeBack: () => void structuredClone(buf, { transfer: [buf] }) };
}

/** Message and destination helpers bound to one run (the checks' sections share it; not exported by the kit). */
export class Harness {
  readonly runId = randomId();
  readonly exactlyOnce: boolean;
  readonly timeoutMs: number;
  private readonly encoder = new TextEncoder();
  private readonly decoder = new TextDecoder();

  /** The plugin may read values after write() (manifest.keepsValues, absent: true). */
  readonly keepsValues: boolean;

  constructor(readonly options: SinkConformanceOptions) {
    this.exactlyOnce = options.plugin.manifest.exactlyOnce === true;
    this.keepsValues = options.plugin.manifest.keepsValues !== false;
    this.timeoutMs = options.timeoutMs ?? 10_000;
  }

  station(check: string, n = 0): string {
    return `kit-${this.runId}-${check}${n === 0 ? '' : `-${n}`}`;
  }

  /** The incarnation id the kit gives a station (one per station name and run). */
  stationId(station: string): string {
    return `${station}#incarnation-1`;
  }

  /** The same message every time for the same (station, partition, offset): replays must be identical. */
  message(station: string, partition: number, offset: number): SinkMessage {
    const size = this.options.valueBytes ?? 64;
    const base = `message ${offset} — héllo ✓ `;
    const text = base.repeat(Math.ceil(size / base.length)).slice(0, size);
    const value = this.encoder.encode(JSON.stringify({ junctionConformance: this.runId, station, partition, offset, text }));
    const headers: Record<string, string> = offset % 3 === 0 ? { 'content-type': 'application/json', 'kit-offset': String(offset) } : {};
    return {
      offset,
      timestamp: 1_700_000_000_000 + offset * 10,
      ...(offset % 2 === 0 ? { key: `key-${offset % 7}` } : {}),
      headers,
      value,
    };
  }

  messages(station: string, partition: number, offsets: Iterable<number>): SinkMessage[] {
    return [...offsets].map((o) => this.message(station, partition, o));
  }

  batch(station: string, partition: number, messages: SinkMessage[]): SinkBatch {
    const first = messages[0];
    const last = messages[messages.length - 1];
    if (!first || !last) throw new Error('the kit never builds an empty batch');
    return { station, stationId: this.stationId(station), partition, firstOffset: first.offset, lastOffset: last.offset, messages };
  }

  async open(rawConfig: unknown = this.options.config, context?: SinkContext): Promise<Sink> {
    const parsed = validateConfig(this.options.plugin.config, rawConfig);
    if (!parsed.success) fail(`config does not parse: ${parsed.issues.map((i) => `${i.path || '(root)'}: ${i.message}`).join('; ')}`);
    const ctx = context ?? this.options.context?.() ?? fakeContext();
    let sink: Sink;
    try {
      sink = await within(this.options.plugin.open(parsed.config, ctx), this.timeoutMs, 'open()');
    } catch (err) {
      if (err instanceof CheckFailed) throw err;
      fail(`open() threw ${describeError(err)}`);
    }
    if (typeof sink !== 'object' || sink === null || typeof sink.write !== 'function' || typeof sink.close !== 'function') {
      fail('open() must resolve to an object with write() and close()');
    }
    return sink;
  }

  /**
   * Opens with a raw config, failing the check when it does not parse or `open()` hangs past `timeoutMs`;
   * an error `open()` throws is thrown as it is (the wedge checks judge it).
   */
  async openRaw(rawConfig: unknown): Promise<Sink> {
    const parsed = validateConfig(this.options.plugin.config, rawConfig);
    if (!parsed.success) fail(`config does not parse: ${parsed.issues.map((i) => `${i.path || '(root)'}: ${i.message}`).join('; ')}`);
    const ctx = this.options.context?.() ?? fakeContext();
    const sink = await within(
      Promise.resolve().then(() => this.options.plugin.open(parsed.config, ctx)),
      this.timeoutMs,
      'open()',
    );
    if (typeof sink !== 'object' || sink === null || typeof sink.write !== 'function' || typeof sink.close !== 'function') {
      fail('open() must resolve to an object with write() and close()');
    }
    return sink;
  }

  /** Closes, failing the check on a throw or a hang. */
  async close(sink: Sink, what = 'close()'): Promise<void> {
    try {
      await within(sink.close(), this.timeoutMs, what);
    } catch (err) {
      if (err instanceof CheckFailed) throw err;
      fail(`${what} threw ${describeError(err)}`);
    }
  }

  /** Closes on the way out of a check that already failed or passed; a problem here is not the check's. */
  async closeQuietly(sink: Sink | undefined): Promise<void> {
    if (!sink) return;
    try {
      await within(sink.close(), this.timeoutMs, 'close()');
    } catch {
      // The check's own verdict stands; close behaviour has checks of its own.
    }
  }

  /** Writes and validates the answer's shape; a throw propagates (as the runtime would see it). */
  async writeRaw(sink: Sink, batch: SinkBatch, signal: AbortSignal = new AbortController().signal): Promise<WriteResult[]> {
    const lent = this.keepsValues ? undefined : lend(batch);
    const answer: unknown = await within(
      sink.write(lent?.batch ?? batch, { signal }),
      this.timeoutMs,
      `write() of ${batch.messages.length} messages`,
    );
    let results: WriteResult[];
    try {
      results = checkWriteResults(answer, batch.messages.length);
    } catch (err) {
      fail(describeError(err));
    }
    const problem = cloneProblem(results);
    if (problem)
      fail(`write() results cannot cross a worker thread (structured clone failed: ${problem}); use ok(), retry(), deadLetter()`);
    // As the runtime does after a clean write: the batch's memory is taken back (see lend).
    if (lent && results.every((r) => r.status === 'ok')) lent.takeBack();
    return results;
  }

  /** Writes and expects `ok()` for every message. */
  async writeOk(sink: Sink, batch: SinkBatch, what: string): Promise<void> {
    let results: WriteResult[];
    try {
      results = await this.writeRaw(sink, batch);
    } catch (err) {
      if (err instanceof CheckFailed) throw err;
      fail(`${what}: write() threw ${describeError(err)}`);
    }
    const bad = results.findIndex((r) => r.status !== 'ok');
    if (bad >= 0) {
      fail(`${what}: expected ok() for every message, got ${JSON.stringify(results[bad])} for offset ${batch.messages[bad]?.offset}`);
    }
  }

  /** How many times each `station/partition/offset` of this run is in the destination; undefined without readBack. */
  async counts(): Promise<Map<string, number> | undefined> {
    if (!this.options.readBack) return undefined;
    let values: Iterable<Uint8Array | string>;
    try {
      values = await within(this.options.readBack(), this.timeoutMs * 3, 'readBack()');
    } catch (err) {
      if (err instanceof CheckFailed) throw err;
      fail(`readBack() threw ${describeError(err)}`);
    }
    const counts = new Map<string, number>();
    for (const v of values) {
      const text = typeof v === 'string' ? v : this.decoder.decode(v);
      if (!text.includes(this.runId)) continue;
      let id: unknown;
      try {
        id = JSON.parse(text);
      } catch {
        continue;
      }
      const o = id as { junctionConformance?: unknown; station?: unknown; partition?: unknown; offset?: unknown };
      if (o?.junctionConformance !== this.runId) continue;
      const key = `${String(o.station)}/${String(o.partition)}/${String(o.offset)}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    return counts;
  }

  /**
   * Verifies the destination holds each expected message exactly once (exactly-once sinks) or at
   * least once, and nothing else of these stations. Returns a sentence for the check's detail.
   */
  async verify(expected: { station: string; partition: number; offsets: Iterable<number> }[]): Promise<string> {
    const counts = await this.counts();
    if (!counts) return 'destination not verified (no readBack)';
    const want = new Set<string>();
    for (const e of expected) for (const o of e.offsets) want.add(`${e.station}/${e.partition}/${o}`);
    const stations = new Set(expected.map((e) => e.station));
    const missing: string[] = [];
    const duplicated: string[] = [];
    for (const key of want) {
      const n = counts.get(key) ?? 0;
      if (n === 0) missing.push(key);
      else if (n > 1 && this.exactlyOnce) duplicated.push(`${key} ×${n}`);
    }
    const unexpected = [...counts.keys()].filter((k) => !want.has(k) && stations.has(k.slice(0, k.indexOf('/'))));
    const list = (xs: string[]) => `${xs.slice(0, 5).join(', ')}${xs.length > 5 ? ` and ${xs.length - 5} more` : ''}`;
    if (missing.length > 0) fail(`the destination lacks ${missing.length} confirmed message(s): ${list(missing)}`);
    if (duplicated.length > 0)
      fail(`exactlyOnce sink, but the destination holds ${duplicated.length} message(s) more than once: ${list(duplicated)}`);
    if (unexpected.length > 0) fail(`the destination holds message(s) never confirmed: ${list(unexpected)}`);
    return `destination holds each of ${want.size} message(s) ${this.exactlyOnce ? 'exactly once' : 'at least once'}`;
  }
}

type CheckFn = (h: Harness) => Promise<string>;

const checks: Record<SinkCheck, CheckFn> = {
  ...wedgeChecks,
  ...authoringChecks,
  async manifest(h) {
    const { plugin } = h.options;
    try {
      checkPlugin(plugin);
    } catch (err) {
      fail(describeError(err));
    }
    if (plugin.kind !== 'sink') fail(`kind is ${JSON.stringify(plugin.kind)}, expected "sink"`);
    const parsed = validateConfig(plugin.config, h.options.config);
    if (!parsed.success)
      fail(`the test config does not parse: ${parsed.issues.map((i) => `${i.path || '(root)'}: ${i.message}`).join('; ')}`);
    let schema: Record<string, unknown>;
    try {
      schema = configJsonSchema(plugin.config);
      JSON.stringify(schema);
    } catch (err) {
      fail(`the config schema has no JSON Schema form: ${describeError(err)}`);
    }
    const paths = secretPaths(plugin.config);
    const redacted = JSON.stringify(redact(plugin.config, h.options.config));
    for (const path of paths) {
      for (const v of valuesAt(h.options.config, path)) {
        if (typeof v === 'string' && v.length >= 3 && redacted.includes(v)) fail(`secret ${path} survives redact()`);
      }
    }
    return `${plugin.manifest.name} ${plugin.manifest.version} (sdk ${plugin.manifest.sdk}, exactlyOnce ${h.exactlyOnce}); ${paths.length} secret field(s)`;
  },

  async 'open-close'(h) {
    const sink = await h.open();
    await h.close(sink);
    return 'opened and closed';
  },

  async 'close-twice'(h) {
    const sink = await h.open();
    await h.close(sink, 'first close()');
    await h.close(sink, 'second close()');
    return 'a second close() resolved';
  },

  async 'check-connection'(h) {
    const sink = await h.open();
    try {
      return await checkConnectionWorks(sink, 'sink', h.timeoutMs);
    } finally {
      await h.closeQuietly(sink);
    }
  },

  async 'single-message'(h) {
    const station = h.station('single');
    const sink = await h.open();
    try {
      await h.writeOk(sink, h.batch(station, 0, h.messages(station, 0, [1])), 'a batch of 1');
    } finally {
      await h.closeQuietly(sink);
    }
    return `1 result, ok; ${await h.verify([{ station, partition: 0, offsets: [1] }])}`;
  },

  async 'many-messages'(h) {
    const n = h.options.manyMessages ?? 200;
    const station = h.station('many');
    const sink = await h.open();
    try {
      await h.writeOk(sink, h.batch(station, 0, h.messages(station, 0, range(1, n))), `a batch of ${n}`);
    } finally {
      await h.closeQuietly(sink);
    }
    return `${n} results, all ok; ${await h.verify([{ station, partition: 0, offsets: range(1, n) }])}`;
  },

  async 'partitions-and-stations'(h) {
    const stations = [h.station('parts', 1), h.station('parts', 2)];
    const sink = await h.open();
    const expected: { station: string; partition: number; offsets: number[] }[] = [];
    try {
      for (const station of stations) for (const partition of [0, 1]) expected.push({ station, partition, offsets: [] });
      for (let b = 0; b < 3; b++) {
        for (const e of expected) {
          const offsets = range(b * 5 + 1, b * 5 + 5);
          await h.writeOk(
            sink,
            h.batch(e.station, e.partition, h.messages(e.station, e.partition, offsets)),
            `batch ${b + 1} of ${e.station}/${e.partition}`,
          );
          e.offsets.push(...offsets);
        }
      }
    } finally {
      await h.closeQuietly(sink);
    }
    return `12 batches over 2 stations × 2 partitions, all ok; ${await h.verify(expected)}`;
  },

  async 'concurrent-partitions'(h) {
    // The contract lets the runtime write batches of different partitions at once (one sink, one
    // thread). A write must therefore keep its own deadline and signal: here one of three concurrent
    // writes is aborted as soon as it starts, and the other two must still be answered ok.
    // The aborted write goes to a station of its own: whether its messages land is not checked.
    const station = h.station('concurrent');
    const stationOf = (partition: number) => (partition === 1 ? h.station('concurrent', 1) : station);
    const sink = await h.open();
    const expected = [0, 2].map((partition) => ({ station, partition, offsets: range(1, 10) }));
    try {
      const ac = new AbortController();
      // The aborted write is started last: a sink that keeps "the current write" in a field hands its
      // signal to the other two.
      const writes = [0, 2, 1].map((partition) =>
        h
          .writeRaw(
            sink,
            h.batch(stationOf(partition), partition, h.messages(stationOf(partition), partition, range(1, 10))),
            partition === 1 ? ac.signal : undefined,
          )
          .then(
            (results) => ({ results }),
            (err: unknown) => ({ err }),
          ),
      );
      ac.abort(new Error('the kit aborted this write'));
      const answers = await Promise.all(writes);
      for (const [i, partition] of [0, 2].entries()) {
        const a = answers[i]!;
        if ('err' in a) {
          if (a.err instanceof CheckFailed) throw a.err;
          fail(
            `partition ${partition}'s write threw ${describeError(a.err)} while a concurrent write of partition 1 was aborted; each write must keep its own signal`,
          );
        }
        const bad = a.results.findIndex((r) => r.status !== 'ok');
        if (bad >= 0)
          fail(
            `partition ${partition}: expected ok() for every message while partition 1's write was aborted, got ${JSON.stringify(a.results[bad])}`,
          );
      }
      const b = answers[2]!;
      if ('err' in b && b.err instanceof CheckFailed) throw b.err;
    } finally {
      await h.closeQuietly(sink);
    }
    return `three partitions written at once, one of them aborted: the other two all ok; ${await h.verify(expected)}`;
  },

  async 'dead-letter'(h) {
    const dl = h.options.deadLetter;
    if (!dl)
      notApplicable(
        'no deadLetter case given: pass a message the sink dead-letters (e.g. one its test config calls poison), or { notApplicable: reason }',
      );
    if ('notApplicable' in dl) notApplicable(dl.notApplicable);
    const station = h.station('dl');
    const poisonValue = typeof dl.value === 'string' ? new TextEncoder().encode(dl.value) : new Uint8Array(dl.value);
    const poison: SinkMessage = {
      offset: 2,
      timestamp: 1_700_000_000_020,
      ...(dl.key === undefined ? {} : { key: dl.key }),
      headers: dl.headers ?? {},
      value: poisonValue,
    };
    const batch = h.batch(station, 0, [h.message(station, 0, 1), poison, h.message(station, 0, 3)]);
    const sink = await h.open(dl.config ?? h.options.config);
    let results: WriteResult[];
    try {
      try {
        results = await h.writeRaw(sink, batch);
      } catch (err) {
        if (err instanceof CheckFailed) throw err;
        fail(`write() threw ${describeError(err)}; a message that can never be written must be answered deadLetter(), not thrown`);
      }
    } finally {
      await h.closeQuietly(sink);
    }
    const [r1, r2, r3] = results;
    if (r2?.status !== 'deadLetter') fail(`the poison message (index 1) got ${JSON.stringify(r2)}, expected deadLetter()`);
    if (!/^[A-Z][A-Z0-9_]*$/.test(r2.code)) fail(`dead-letter code ${JSON.stringify(r2.code)} is not a stable UPPER_SNAKE code`);
    if (r2.reason.trim() === '') fail('dead-letter reason is empty');
    if (r1?.status !== 'ok' || r3?.status !== 'ok') {
      fail(
        `the good messages around the poison got ${JSON.stringify([r1, r3])}, expected ok() for both (results are per message, in order)`,
      );
    }
    const detail = `[ok, deadLetter(${r2.code}), ok]`;
    if (h.options.readBack) {
      const values = await within(h.options.readBack(), h.timeoutMs * 3, 'readBack()');
      const hex = Buffer.from(poisonValue).toString('hex');
      for (const v of values) {
        const bytes = typeof v === 'string' ? Buffer.from(v, 'utf8') : Buffer.from(v);
        if (bytes.toString('hex') === hex) fail('the dead-lettered message is in the destination as well');
      }
    }
    return `${detail}; ${await h.verify([{ station, partition: 0, offsets: [1, 3] }])}`;
  },

  async retry(h) {
    const rc = h.options.retry;
    if (!rc)
      notApplicable(
        'no retry case given: pass { breakDestination } and/or { config } that make the sink answer retry(), or { notApplicable: reason }',
      );
    if ('notApplicable' in rc) notApplicable(rc.notApplicable);
    const station = h.station('retry');
    const batch = h.batch(station, 0, h.messages(station, 0, range(1, 5)));
    let heal: (() => Promise<void>) | void = undefined;
    let retried: SinkMessage[] = [];
    let how: string;
    const broken = await h.open(rc.config ?? h.options.config);
    try {
      if (rc.breakDestination) heal = await rc.breakDestination({ station, partition: 0 });
      try {
        const results = await h.writeRaw(broken, batch);
        const dl = results.find((r) => r.status === 'deadLetter');
        if (dl)
          fail(`a message was dead-lettered while the destination was broken: ${JSON.stringify(dl)}; a transient failure must be retry()`);
        for (const [i, r] of results.entries()) {
          if (r.status !== 'retry') continue;
          if (r.reason.trim() === '') fail('retry() reason is empty');
          retried.push(batch.messages[i] as SinkMessage);
        }
        if (retried.length === 0) fail('the sink answered ok() for every message while its destination was broken');
        how = `${retried.length} of ${results.length} answered retry()`;
      } catch (err) {
        if (err instanceof CheckFailed) throw err;
        if (!isRetryable(err)) {
          fail(
            `write() threw a non-retryable error while the destination was broken: ${describeError(err)}; answer retry() or throw a retryable JunctionError`,
          );
        }
        retried = [...batch.messages];
        how = `write() threw a retryable error (${describeError(err)})`;
      }
    } finally {
      await h.closeQuietly(broken);
      if (typeof heal === 'function') await within(heal(), h.timeoutMs, 'the heal function from breakDestination');
    }
    const healed = await h.open();
    try {
      await h.writeOk(healed, h.batch(station, 0, retried), 'the retried messages after the destination healed');
    } finally {
      await h.closeQuietly(healed);
    }
    return `${how}; rewritten after healing: all ok; ${await h.verify([{ station, partition: 0, offsets: range(1, 5) }])}`;
  },

  async 'replay-same-batch'(h) {
    const station = h.station('replay');
    const batch = h.batch(station, 0, h.messages(station, 0, range(1, 20)));
    let sink = await h.open();
    try {
      await h.writeOk(sink, batch, 'the first write');
    } finally {
      await h.closeQuietly(sink);
    }
    sink = await h.open();
    try {
      await h.writeOk(sink, batch, 'the same batch again after close and reopen');
    } finally {
      await h.closeQuietly(sink);
    }
    if (!h.options.readBack)
      notApplicable('both writes answered ok, but without readBack the destination cannot be checked for duplicates');
    return `replay answered ok; ${await h.verify([{ station, partition: 0, offsets: range(1, 20) }])}`;
  },

  async 'replay-overlapping'(h) {
    const station = h.station('overlap');
    const p = 0;
    const write = async (sink: Sink, offsets: number[], what: string) =>
      h.writeOk(sink, h.batch(station, p, h.messages(station, p, offsets)), what);
    let sink = await h.open();
    try {
      await write(sink, range(1, 10), 'offsets 1-10');
    } finally {
      await h.closeQuietly(sink);
    }
    sink = await h.open();
    try {
      // A replay cut differently, a stale prefix, a retry batch with gaps, then its messages again densely.
      await write(sink, range(6, 15), 'offsets 6-15 (overlapping 1-10)');
      await write(sink, range(1, 3), 'offsets 1-3 again');
      await write(sink, [16, 18, 20], 'offsets 16, 18, 20 (with gaps)');
      await write(sink, range(16, 20), 'offsets 16-20 (filling the gaps)');
      await write(sink, range(4, 17), 'offsets 4-17 again');
    } finally {
      await h.closeQuietly(sink);
    }
    if (!h.options.readBack)
      notApplicable('every write answered ok, but without readBack the destination cannot be checked for duplicates');
    return `overlapping replays answered ok; ${await h.verify([{ station, partition: p, offsets: range(1, 20) }])}`;
  },

  async 'aborted-signal'(h) {
    const station = h.station('abort');
    const sink = await h.open();
    const ac = new AbortController();
    ac.abort(new Error('the kit aborted this write'));
    let detail: string;
    try {
      await h.writeRaw(sink, h.batch(station, 0, h.messages(station, 0, range(1, 3))), ac.signal);
      detail = 'write() with an aborted signal resolved with valid results';
    } catch (err) {
      if (err instanceof CheckFailed) throw err;
      detail = `write() with an aborted signal rejected (${describeError(err)})`;
    } finally {
      await h.closeQuietly(sink);
    }
    return detail;
  },

  ...exactlyOnceChecks,
};

/** Runs one check. */
export async function runSinkCheck(
  options: SinkConformanceOptions,
  check: SinkCheck,
  harness = new Harness(options),
): Promise<CheckResult> {
  return runCheck(check, () => checks[check](harness));
}

/**
 * Runs the sink conformance checks against a plugin, one after another, and resolves with one result
 * per check (passed, failed with what went wrong, or not applicable with why). Never rejects for a
 * misbehaving sink: a throw, a hang (past `timeoutMs`) or a malformed answer fails its check.
 *
 * The checks:
 * - `manifest`: a valid sink manifest whose `sdk` range this SDK satisfies; the test config parses;
 *   the schema has a JSON Schema form; secret values do not survive `redact()`.
 * - `open-close`, `close-twice`: close resolves, and a second close resolves too.
 * - `check-connection`: resolves with the working config (not applicable when the sink has none).
 * - `single-message`, `many-messages`, `partitions-and-stations`: one well-formed, clonable result per
 *   message, all ok; the destination holds each message (once, for an exactly-once sink).
 * - `concurrent-partitions`: writes of three partitions at once on one sink (the contract allows it),
 *   one of them aborted as it starts: the other two are answered ok and land.
 * - `dead-letter`: `[good, poison, good]` is answered `[ok, deadLetter(CODE), ok]`; the poison is not
 *   in the destination.
 * - `retry`: with the destination broken, messages are answered `retry()` (or a retryable error is
 *   thrown), never dead-lettered; after healing, the retried messages are written and answered ok.
 * - `replay-same-batch`: the same batch after close and reopen is answered ok; the destination holds
 *   each message once (exactlyOnce) or at least once.
 * - `replay-overlapping`: batches that overlap earlier ones differently, and a batch with gaps, are
 *   answered ok; each offset is in the destination once (exactlyOnce) or at least once.
 * - `aborted-signal`: a write given an already-aborted signal settles (resolves or rejects) in time.
 * - the authoring checks (see sink-authoring.ts): `results-count` (batches of 1 to 64, and one with a
 *   single key, answered one result per message), `replay-idempotent` (a replay and an overlapping batch
 *   on the same open sink answered ok, no duplicates for an exactly-once sink), `aborted-write` (a
 *   write aborted while it runs, then the batch again on the same sink: all ok, all landed),
 *   `secrets-not-logged` (no secret value in logs, console, reasons or errors).
 * - the wedge checks (see sink-wedge.ts): `open-unusable` (a destination that can never be used fails
 *   open, or the first write, in time with a coded, non-retryable error), `open-unreachable` (a destination
 *   that is down: open settles in time, retryable if it rejects), `write-stalled-abort` (a write to a
 *   stalled destination settles soon after its signal aborts), `close-after-failure` (close resolves in
 *   time after a failed write).
 * - `station-identity`: the same offsets under a new `stationId` (the station deleted and created again)
 *   are new data: written, and each message of both incarnations is in the destination once.
 * - `late-write`: a write held by the destination (`lateWrite.hold`) across the death of its writer and
 *   applied after a new writer replayed the range cut differently: every offset once (exactlyOnce) or at
 *   least once, and writers after it still answer ok (see sink-exactly-once.ts).
 *
 * The runtime never sends an empty batch, so no check sends one.
 */
export async function runSinkConformance(options: SinkConformanceOptions): Promise<CheckResult[]> {
  const harness = new Harness(options);
  const selected = SINK_CHECKS.filter((c) => !options.checks || options.checks.includes(c));
  const out: CheckResult[] = [];
  for (const check of selected) out.push(await runSinkCheck(options, check, harness));
  return out;
}

/** Why a check is known to be not applicable before it runs (for `it.skip`), or undefined. */
export function sinkCheckNotApplicable(options: SinkConformanceOptions, check: SinkCheck): string | undefined {
  if ((SINK_WEDGE_CHECKS as readonly string[]).includes(check)) return wedgeCheckNotApplicable(options, check as SinkWedgeCheck);
  if (check === 'secrets-not-logged') return secretsCheckNotApplicable(options);
  if (check === 'dead-letter' && options.deadLetter && 'notApplicable' in options.deadLetter) return options.deadLetter.notApplicable;
  if (check === 'retry' && options.retry && 'notApplicable' in options.retry) return options.retry.notApplicable;
  if (check === 'dead-letter' && !options.deadLetter) return 'no deadLetter case given';
  if (check === 'retry' && !options.retry) return 'no retry case given';
  if (check === 'late-write' && options.lateWrite && 'notApplicable' in options.lateWrite) return options.lateWrite.notApplicable;
  if (check === 'late-write' && !options.lateWrite) return 'no lateWrite case given';
  return undefined;
}
