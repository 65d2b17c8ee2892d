/** Helpers of the StationStore conformance suite that need no store. */
import { expect } from 'vitest';
import { dlsName } from '../../contract.js';
import type {
  Delivery,
  FetchOptions,
  GroupInfo,
  MessageInput,
  ProduceResult,
  StationConfigInput,
  StationPatch,
  StationStore,
  StoredMessage,
  StoreEvent,
} from '../../contract.js';

/** An engine under test. */
export interface ConformanceTarget {
  name: string;
  /** A fresh, opened store with no stations. */
  create(): Promise<StationStore>;
  /** Closes and reopens the same store (same data); engines with durable state must keep it. Omit for engines that cannot. */
  reopen?(store: StationStore): Promise<StationStore>;
  /**
   * Milliseconds of real time the engine may take beyond an ack deadline or a nack delay before the
   * message is deliverable again (timer granularity, a sweep interval, a server round trip). Tests use
   * maxAckTimeMs >= 100 and poll, so a generous value costs nothing on a fast engine. Default 1000.
   */
  deadlineSlackMs?: number;
}

/** How long the engine may take to apply retention (age, count, ack-based) after it became due. */
export const RETENTION_WITHIN_MS = 5_000;
/** Timers may fire a little early against Date.now()/performance.now() granularity. */
export const TIMER_TOLERANCE_MS = 10;

export const runId = Math.random().toString(36).slice(2, 8);
let seq = 0;
/** A station / group name no other test (or other run against a shared server) uses. */
export function uniqueName(prefix: string): string {
  seq += 1;
  return `${prefix}-${runId}-${seq}`;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function bytes(s: string): Buffer {
  return Buffer.from(s, 'utf8');
}

export function asBuffer(u: Uint8Array): Buffer {
  return Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

/** Every byte value once, in order. */
export const ALL_BYTES = Buffer.from(Array.from({ length: 256 }, (_, i) => i));

export function patterned(length: number, seed: number): Buffer {
  const b = Buffer.alloc(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

export function expectSameBytes(actual: Uint8Array, expected: Uint8Array, what = 'value'): void {
  expect(actual, `${what} is a Uint8Array`).toBeInstanceOf(Uint8Array);
  const cmp = Buffer.compare(asBuffer(actual), asBuffer(expected));
  expect(cmp, `${what}: ${actual.byteLength} bytes, expected ${expected.byteLength} bytes with the same content`).toBe(0);
}

export interface CodedError {
  code: string;
  issues?: { path: string; message: string }[] | undefined;
}

/** Awaits `promise` and requires it to reject with `code`; returns the error for further checks. */
export async function rejectsWithCode(promise: Promise<unknown>, code: string | readonly string[]): Promise<CodedError> {
  const codes = typeof code === 'string' ? [code] : code;
  let resolved: unknown;
  try {
    resolved = await promise;
  } catch (err) {
    expect(err, 'the rejection is an Error').toBeInstanceOf(Error);
    const got = (err as { code?: unknown }).code;
    expect(codes, `rejected with code ${String(got)} (${(err as Error).message})`).toContain(got);
    return err as CodedError;
  }
  throw new Error(`expected a rejection with code ${codes.join(' | ')}, but it resolved with ${safeJson(resolved)}`);
}

export function safeJson(v: unknown): string {
  try {
    return JSON.stringify(v, (_k, x: unknown) => (x instanceof Uint8Array ? `<${x.byteLength} bytes>` : x))?.slice(0, 500) ?? String(v);
  } catch {
    return String(v);
  }
}

/** Polls `probe` until it returns something other than undefined; throws with the last observation on timeout. */
export async function eventually<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>, intervalMs = 25): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
      last = 'undefined';
    } catch (err) {
      last = err instanceof Error ? `${(err as { code?: string }).code ?? err.name}: ${err.message}` : err;
    }
    if (performance.now() >= deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last observation: ${safeJson(last)}`);
    await sleep(intervalMs);
  }
}

export function offsets(ms: readonly { offset: number }[]): number[] {
  return ms.map((m) => m.offset);
}

export function range(from: number, to: number): number[] {
  const out: number[] = [];
  for (let i = from; i <= to; i++) out.push(i);
  return out;
}

export function stored(partition: number, offset: number): ProduceResult {
  return { status: 'stored', partition, offset };
}

export function pk(m: { partition: number; offset: number }): string {
  return `${m.partition}:${m.offset}`;
}

/** Names of the stations that are not dead-letter stations (engines may create a DLS with its station). */
export function originNames(list: readonly { name: string; deadLetterOf?: string | undefined }[]): string[] {
  return list
    .filter((i) => i.deadLetterOf === undefined)
    .map((i) => i.name)
    .sort();
}

/** Every listed dead-letter station is named after a listed station. */
export function expectDlsConsistent(list: readonly { name: string; deadLetterOf?: string | undefined }[]): void {
  const origins = originNames(list);
  for (const i of list) {
    if (i.deadLetterOf === undefined) continue;
    expect(i.name).toBe(dlsName(i.deadLetterOf));
    expect(origins, `origin of ${i.name}`).toContain(i.deadLetterOf);
  }
}

export function first<T>(arr: readonly T[], what = 'element'): T {
  const v = arr[0];
  if (v === undefined) throw new Error(`expected at least one ${what}, got none`);
  return v;
}
