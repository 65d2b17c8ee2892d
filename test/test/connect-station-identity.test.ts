/**
 * A station deleted and created again under the same name, with a sink connector on it, in a real broker
 * process (issue 15 item 4): the new incarnation's offsets start at 1 again, and the file sink writes its
 * messages — none is acknowledged as "already written" because the old incarnation's files cover the
 * same offsets.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readFileSink, type FileRecord } from '@junction/connector-file/read';
import { stationIdSegment } from '@junction/sdk-connector';
import { api, sleep, startBroker, type BrokerProcess } from '../src/index.js';

const STATION = 'orders';

async function produce(url: string, n: number, tag: string): Promise<Map<number, Buffer>> {
  const out = new Map<number, Buffer>();
  const values = Array.from({ length: n }, (_, i) => Buffer.from(`{"${tag}":${i},"pad":"${'y'.repeat(i % 300)}"}`));
  const res = await api<{ results: { partition: number; offset: number }[] }>(url, 'POST', `/v1/stations/${STATION}/messages`, {
    messages: values.map((v) => ({ valueBase64: v.toString('base64') })),
  });
  res.results.forEach((r, i) => out.set(r.offset, values[i]!));
  return out;
}

async function until<T>(what: string, broker: BrokerProcess, timeoutMs: number, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${broker.output()}`);
    await sleep(100);
  }
}

function expectExactly(records: FileRecord[], produced: Map<number, Buffer>): void {
  expect(records.map((r) => r.offset).sort((a, b) => a - b)).toEqual([...produced.keys()].sort((a, b) => a - b));
  for (const r of records) expect(Buffer.compare(r.value, produced.get(r.offset)!)).toBe(0);
}

describe('station identity through the connector runtime', () => {
  const dirs: string[] = [];
  const brokers: BrokerProcess[] = [];
  afterAll(async () => {
    for (const b of brokers) await b.kill();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('a station deleted and created again: the file sink writes the new incarnation from offset 1, byte for byte; nothing is taken as a replay', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'junction-identity-e2e-'));
    dirs.push(dataDir);
    const out = join(dataDir, 'out');
    const configPath = join(dataDir, 'junction.yaml');
    await writeFile(
      configPath,
      `stations:
  - name: ${STATION}
connectors:
  - name: to-files
    plugin: file
    station: ${STATION}
    config:
      dir: ${JSON.stringify(out)}
    batch:
      maxMessages: 50
      maxLatencyMs: 50
`,
    );
    const broker = await startBroker({ dataDir, args: ['--config', configPath] });
    brokers.push(broker);

    const first = await api<{ id: string }>(broker.url, 'GET', `/v1/stations/${STATION}`);
    const before = await produce(broker.url, 300, 'old');
    const of = (records: FileRecord[], id: string) => records.filter((r) => r.stationId === stationIdSegment(id));
    await until('the first incarnation in files', broker, 60_000, async () =>
      of(await readFileSink(out), first.id).length >= 300 ? true : undefined,
    );

    await api(broker.url, 'DELETE', `/v1/stations/${STATION}`);
    const second = await api<{ id: string }>(broker.url, 'POST', '/v1/stations', { name: STATION });
    expect(second.id).not.toBe(first.id);
    const after = await produce(broker.url, 210, 'new');
    expect([...after.keys()]).toEqual(Array.from({ length: 210 }, (_, i) => i + 1));

    const records = await until('the new incarnation in files', broker, 90_000, async () => {
      const r = await readFileSink(out);
      return of(r, second.id).length >= 210 ? r : undefined;
    });
    await sleep(300); // nothing more comes
    const final = await readFileSink(out);
    expectExactly(of(final, first.id), before);
    expectExactly(of(final, second.id), after);
    expect(final).toHaveLength(records.length);
    expect(final).toHaveLength(510);
    const metrics = await (await fetch(`${broker.url}/metrics`)).text();
    const replayed = metrics.split('\n').filter((l) => l.startsWith('junction_plugin_file_replayed_messages_total{'));
    for (const line of replayed) expect(Number(line.slice(line.lastIndexOf(' ') + 1))).toBe(0);
    await broker.stop();
  }, 180_000);
});
