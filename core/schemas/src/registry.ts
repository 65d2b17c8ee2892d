/**
 * The schema registry, kept in the broker itself: its events are messages of the station `__schemas`
 * (one partition, kept for good, fsynced), so the embedded engine needs no other service and nodes of a
 * cluster share one log. A change is appended first and answered once this node has applied the log up
 * to it: every node applies the same events in the same order (RegistryState is deterministic), so two
 * nodes registering at once agree on every id and version. A kill -9 leaves an event whole or absent:
 * there is no half-written schema, and ids (log offsets) are never given twice.
 */
import type { Logger } from 'pino';
import type { StationStore } from '@junction/broker';
import { isJunctionError } from '@junction/broker';
import { SchemaErrorCode, SchemaRegistryError } from './errors.js';
import type { SchemaReference, SchemaType } from './formats/index.js';
import type { CompatibilityLevel } from './compat.js';
import { RegistryEvent, RegistryState } from './state.js';
import type { Mode } from './state.js';

/** The station that holds the registry's log. */
export const SCHEMAS_STATION = '__schemas';
const PAGE = 1000;

export interface SchemaRegistryOptions {
  store: StationStore;
  /** Default `__schemas`. */
  station?: string | undefined;
  logger?: Logger | undefined;
}

export class SchemaRegistry {
  readonly state = new RegistryState();
  private readonly store: StationStore;
  private readonly station: string;
  private readonly logger: Logger | undefined;
  /** The next log offset to apply. */
  private next = 1;
  private catching: Promise<void> | undefined;
  /** Answers of events this node appended, by offset, until the append reads them. */
  private readonly answers = new Map<number, { ok: true; value: unknown } | { ok: false; error: unknown }>();
  private appending: Promise<unknown> = Promise.resolve();
  private opened = false;

  constructor(options: SchemaRegistryOptions) {
    this.store = options.store;
    this.station = options.station ?? SCHEMAS_STATION;
    this.logger = options.logger;
  }

  /** Creates the log station when missing and applies the log. Call once before anything else. */
  async open(): Promise<void> {
    try {
      await this.store.getStation(this.station);
    } catch (err) {
      if (!isJunctionError(err) || err.code !== 'STATION_NOT_FOUND') throw err;
      try {
        await this.store.createStation(this.station, {
          partitions: 1,
          retention: {},
          dedupWindowMs: 0,
          fsync: 'always',
          deadLetter: { enabled: false },
        });
      } catch (e) {
        // Another node made it meanwhile.
        if (!isJunctionError(e) || e.code !== 'STATION_EXISTS') throw e;
      }
    }
    this.opened = true;
    await this.catchUp();
    this.logger?.info({ station: this.station, applied: this.next - 1 }, 'schema registry open');
  }

  /** Applies what the log holds beyond what this node applied (other nodes' changes). Cheap when nothing is new. */
  catchUp(): Promise<void> {
    if (!this.opened) return Promise.reject(new SchemaRegistryError(SchemaErrorCode.STORE_ERROR, 'the schema registry is not open'));
    this.catching ??= this.readLog().finally(() => {
      this.catching = undefined;
    });
    return this.catching;
  }

  private async readLog(): Promise<void> {
    for (;;) {
      const page = await this.store.read(this.station, { partition: 0, fromOffset: this.next, limit: PAGE });
      if (page.length === 0) return;
      for (const m of page) {
        this.next = m.offset + 1;
        let event: RegistryEvent;
        try {
          event = RegistryEvent.parse(JSON.parse(Buffer.from(m.value).toString('utf8')));
        } catch (err) {
          this.logger?.error(
            { station: this.station, offset: m.offset, err },
            'schema registry: a record of its log is not an event; skipped',
          );
          continue;
        }
        let answer: { ok: true; value: unknown } | { ok: false; error: unknown };
        try {
          answer = { ok: true, value: this.state.apply(event, m.offset) };
        } catch (error) {
          answer = { ok: false, error };
        }
        if (this.answers.has(m.offset)) this.answers.set(m.offset, answer);
      }
      if (page.length < PAGE) return;
    }
  }

  /** Appends an event and answers what applying it gave (or throws its error). One append at a time per node. */
  async append(event: RegistryEvent): Promise<unknown> {
    const run = this.appending.then(async () => {
      const [result] = await this.store.produce(this.station, [{ value: Buffer.from(JSON.stringify(event)) }]);
      if (!result || result.status === 'rejected') {
        throw new SchemaRegistryError(
          SchemaErrorCode.STORE_ERROR,
          `the registry's log refused the change: ${result?.status === 'rejected' ? result.message : 'no answer'}`,
        );
      }
      this.answers.set(result.offset, { ok: false, error: new SchemaRegistryError(SchemaErrorCode.STORE_ERROR, 'not applied') });
      try {
        while (this.next <= result.offset) await this.catchUp();
        const answer = this.answers.get(result.offset)!;
        if (!answer.ok) throw answer.error;
        return answer.value;
      } finally {
        this.answers.delete(result.offset);
      }
    });
    this.appending = run.catch(() => undefined);
    return run;
  }

  // ---------------------------------------------------------------- operations (what the API calls)

  /**
   * Registers a schema under a subject, or finds it there: `{ id, version }`. Checked before it is
   * appended (a bad or incompatible schema never reaches the log) and again when applied.
   */
  async register(
    subject: string,
    schemaType: SchemaType,
    schema: string,
    references: SchemaReference[] = [],
  ): Promise<{ id: number; version: number }> {
    checkSubject(subject);
    await this.catchUp();
    const { parsed, key } = this.state.parse(schemaType, schema, references);
    const found = this.state.findInSubject(subject, key);
    if (found) return { id: found.id, version: found.version };
    const problems = this.state.problemsOf(subject, parsed);
    if (problems.length > 0) {
      throw new SchemaRegistryError(
        SchemaErrorCode.INCOMPATIBLE_SCHEMA,
        `Schema being registered is incompatible with an earlier schema for subject "${subject}", details: [${problems.join('; ')}]`,
      );
    }
    return (await this.append({ op: 'register', subject, schemaType, schema, references })) as { id: number; version: number };
  }

  async deleteSubject(subject: string, permanent: boolean): Promise<number[]> {
    await this.catchUp();
    return (await this.append({ op: 'delete-subject', subject, permanent })) as number[];
  }

  async deleteVersion(subject: string, version: number | 'latest', permanent: boolean): Promise<number> {
    await this.catchUp();
    const v = version === 'latest' ? this.state.version(subject, 'latest', false).version : version;
    return (await this.append({ op: 'delete-version', subject, version: v, permanent })) as number;
  }

  async setCompatibility(
    subject: string | undefined,
    compatibility: CompatibilityLevel | null,
  ): Promise<{ before: string | undefined; after: string | undefined }> {
    if (subject !== undefined) checkSubject(subject);
    return (await this.append({ op: 'config', ...(subject === undefined ? {} : { subject }), compatibility })) as {
      before: string | undefined;
      after: string | undefined;
    };
  }

  async setMode(subject: string | undefined, mode: Mode | null): Promise<{ before: string | undefined; after: string | undefined }> {
    if (subject !== undefined) checkSubject(subject);
    return (await this.append({ op: 'mode', ...(subject === undefined ? {} : { subject }), mode })) as {
      before: string | undefined;
      after: string | undefined;
    };
  }
}

/** Subjects: 1–255 characters, no control characters (they are path segments and log fields). */
export function checkSubject(subject: string): void {
  // eslint-disable-next-line no-control-regex
  if (subject.length === 0 || subject.length > 255 || /[\u0000-\u001f\u007f]/.test(subject)) {
    throw new SchemaRegistryError(SchemaErrorCode.INVALID_SCHEMA, 'Invalid subject: 1-255 characters, no control characters');
  }
}
