/** Shared helpers of the Snowflake sink tests: configs, batches, read-back through snowflake-sdk. */
import snowflake from 'snowflake-sdk';
import type { SinkBatch, SinkMessage } from '@junction/sdk-connector';
import { fakeContext } from '@junction/sdk-connector/testing';
import plugin from '../src/index.js';
import type { FakeSnowflake } from '../../../test/fakes/snowflake/server.js';

process.env.SF_TELEMETRY_DISABLE_CONNECTION_SHAPE = '1';

export function config(fake: FakeSnowflake, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    account: 'testacct',
    accessUrl: fake.url,
    username: 'junction',
    password: 'secret',
    warehouse: 'WH',
    database: 'DB',
    table: 'EVENTS',
    ...extra,
  };
}

/** A query through the same driver the sink uses. */
export async function query(fake: FakeSnowflake, sqlText: string, binds: unknown[] = []): Promise<Record<string, unknown>[]> {
  const conn = snowflake.createConnection({
    account: 'testacct',
    accessUrl: fake.url,
    username: 'junction',
    password: 'secret',
    database: 'DB',
    schema: 'PUBLIC',
    warehouse: 'WH',
  } as never);
  await conn.connectAsync(() => undefined);
  try {
    return await new Promise((res, rej) =>
      conn.execute({
        sqlText,
        binds: binds as never,
        complete: (e, _s, rows) => (e ? rej(e) : res((rows ?? []) as Record<string, unknown>[])),
      }),
    );
  } finally {
    await new Promise<void>((r) => conn.destroy(() => r()));
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
