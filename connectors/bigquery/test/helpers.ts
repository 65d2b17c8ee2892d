/** Shared helpers of the BigQuery sink tests: the fake, configs, batches, read-back through the SDK. */
import { BigQuery } from '@google-cloud/bigquery';
import type { SinkBatch, SinkMessage } from '@junction/sdk-connector';
import { fakeContext } from '@junction/sdk-connector/testing';
import plugin from '../src/index.js';
import type { FakeBigQuery } from '../../../test/fakes/bigquery/server.js';

export const PROJECT = 'test-proj';
export const TOKEN = 'good-token';

export function config(fake: FakeBigQuery, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { projectId: PROJECT, dataset: 'ds', table: 'events', apiEndpoint: fake.url, accessToken: TOKEN, maxRetries: 0, ...extra };
}

/** The same SDK the sink uses, pointed at the fake: tests read back with queries through it. */
export function client(fake: FakeBigQuery): BigQuery {
  return new BigQuery({
    projectId: PROJECT,
    apiEndpoint: fake.url,
    authClient: { getRequestHeaders: async () => new Headers({ authorization: `Bearer ${TOKEN}` }) } as never,
  });
}

export async function query(fake: FakeBigQuery, sql: string, params?: Record<string, unknown>): Promise<Record<string, unknown>[]> {
  const [rows] = await client(fake).query({ query: sql, ...(params ? { params } : {}) });
  return rows as Record<string, unknown>[];
}

const enc = new TextEncoder();
export function msg(offset: number, value: unknown, extra: Partial<SinkMessage> = {}): SinkMessage {
  return {
    offset,
    timestamp: 1_700_000_000_000 + offset,
    headers: { h: String(offset) },
    value: enc.encode(typeof value === 'string' ? value : JSON.stringify(value)),
    ...extra,
  };
}
/** A batch of one incarnation of `station` (`stationId` defaults to `<station>-id`). */
export function batch(station: string, messages: SinkMessage[], partition = 0, stationId = `${station}-id`): SinkBatch {
  return { station, stationId, partition, firstOffset: messages[0]!.offset, lastOffset: messages.at(-1)!.offset, messages };
}
export const range = (a: number, b: number) => Array.from({ length: b - a + 1 }, (_, i) => a + i);
export const signal = () => new AbortController().signal;

export async function open(cfg: Record<string, unknown>) {
  return plugin.open(plugin.config.parse(cfg) as never, fakeContext());
}
