/** Shared helpers of the Firebolt sink tests: configs, batches, read-back through firebolt-sdk. */
import { Firebolt } from 'firebolt-sdk';
import type { SinkBatch, SinkMessage } from '@junction/sdk-connector';
import { fakeContext } from '@junction/sdk-connector/testing';
import plugin from '../src/index.js';
import { PlainOrTlsHttpClient, silentLogger } from '../src/http.js';
import type { FakeFirebolt } from '../../../test/fakes/firebolt/server.js';

export function config(fake: FakeFirebolt, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    account: 'acct',
    clientId: 'junction-id',
    clientSecret: 'junction-secret',
    apiEndpoint: fake.url,
    database: 'db',
    engine: 'eng',
    table: 'events',
    ...extra,
  };
}

/** A query through the same SDK the sink uses; rows as objects. */
export async function query(fake: FakeFirebolt, sql: string): Promise<Record<string, unknown>[]> {
  const http = new PlainOrTlsHttpClient();
  try {
    const fb = Firebolt({ apiEndpoint: fake.url, dependencies: { httpClient: http as never, logger: silentLogger } });
    const conn = await fb.connect({
      account: 'acct',
      auth: { client_id: 'junction-id', client_secret: 'junction-secret' },
      database: 'db',
      engineName: 'eng',
      useCache: false,
    });
    const st = await conn.execute(sql, { response: { normalizeData: true } });
    return (await st.fetchResult()).data as Record<string, unknown>[];
  } finally {
    http.destroy();
  }
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
