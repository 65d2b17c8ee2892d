import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SinkBatch, SinkMessage } from '@junction/sdk-connector';

export async function tempDir(prefix = 'junction-file-sink-'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export function value(offset: number): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(`{"n":${offset},"text":"message ${offset}"}`);
}

export function message(offset: number, over: Partial<SinkMessage> = {}): SinkMessage {
  return { offset, timestamp: 1_700_000_000_000 + offset, headers: {}, value: value(offset), ...over };
}

/** A batch of one incarnation of `station` (`stationId` defaults to `<station>-id`). */
export function batch(station: string, partition: number, offsets: number[] | SinkMessage[], stationId = `${station}-id`): SinkBatch {
  const messages = offsets.map((o) => (typeof o === 'number' ? message(o) : o));
  return {
    station,
    stationId,
    partition,
    firstOffset: messages[0]?.offset ?? 0,
    lastOffset: messages[messages.length - 1]?.offset ?? 0,
    messages,
  };
}

export function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

export const signal = new AbortController().signal;
