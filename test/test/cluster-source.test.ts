/**
 * A source connector across Junction nodes: its positions live in the shared metadata bucket (fenced by
 * the lease of its task 0), so when the node running it is SIGKILLed mid-stream the source resumes on
 * another node from the position the dead node stored — not from that node's own (absent) offsets file.
 *
 * datagen at 1000 msgs/s with a fixed start time: message `seq` has `createdAt = startTime + (seq − 1) ms`
 * exactly (one slot per ms), and msgId `order-<seed>-<seq>` makes a repeat after the move a duplicate
 * the station drops. The station must end with exactly N messages, seq 1…N, each once, and the stored
 * position, sampled over REST from a surviving node all along, must never go backwards (a restart from
 * scratch would write small positions again).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { JetStreamStore } from '@junction/cluster';
import {
  api,
  eventually,
  JunctionNodes,
  pidOfWorker,
  sleep,
  startNatsCluster,
  type BrokerProcess,
  type NatsCluster,
} from '../src/index.js';

interface Status {
  connector: { state: string };
  tasks: { id: number; state: string; worker?: string }[];
}
interface Offsets {
  offsets: { partition: { task: number }; offset: { seq: number; startMs: number } }[];
}

describe('a source connector across Junction nodes (shared, fenced positions)', () => {
  let cluster: NatsCluster | undefined;
  let reader: JetStreamStore | undefined;
  const junction = new JunctionNodes();
  afterAll(async () => {
    await reader?.close().catch(() => {});
    await junction.stop();
    await cluster?.stop();
  });

  const node = (urls: string): Promise<BrokerProcess> => junction.start(urls, 'junction-cs-node-');

  it('SIGKILL of the node running a datagen source: it resumes elsewhere from the stored position; the station holds exactly N, no gap', async () => {
    cluster = await startNatsCluster({ nodes: 3 });
    const urls = cluster.servers.join(',');
    const nodes = [await node(urls), await node(urls), await node(urls)];
    const a = nodes[0]!;
    const N = 12_000;
    const START = '2024-01-01T00:00:00.000Z';
    const startMs = Date.parse(START);

    await api(a.url, 'POST', '/v1/stations', { name: 'gen', partitions: 1, dedupWindowMs: 600_000 });
    await api(a.url, 'POST', '/v1/connectors', {
      name: 'gen',
      plugin: 'datagen',
      station: 'gen',
      config: { shape: 'order', seed: 7, ratePerSec: 1000, batchSize: 100, maxMessages: N, startTime: START },
    });
    const first = await eventually(
      'the source running somewhere',
      20_000,
      async () => {
        const s = await api<Status>(a.url, 'GET', '/v1/connectors/gen/status');
        return s.tasks[0]?.state === 'RUNNING' && s.tasks[0].worker ? s.tasks[0].worker : undefined;
      },
      100,
    );
    const victim = nodes.find((n) => n.child.pid === pidOfWorker(first));
    expect(victim, `worker ${first} is one of the nodes`).toBeDefined();
    const survivors = nodes.filter((n) => n !== victim);

    // Sample the stored position from a survivor all along: it must never go backwards.
    const seen: number[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const o = await api<Offsets>(survivors[0]!.url, 'GET', '/v1/connectors/gen/offsets').catch(() => undefined);
        const seq = o?.offsets.find((e) => e.partition.task === 0)?.offset.seq;
        if (typeof seq === 'number' && seq !== seen.at(-1)) seen.push(seq);
        await sleep(20);
      }
    })();

    // Kill the node mid-stream (about a quarter in).
    await eventually('a stored position past 3000', 30_000, async () => (seen.some((s) => s >= 3000) ? true : undefined), 20);
    const killedAt = Date.now();
    await victim!.kill();
    const atKill = seen.at(-1)!;
    expect(atKill).toBeLessThan(N);
    const moved = await eventually(
      'the source running on another node',
      15_000,
      async () => {
        const s = await api<Status>(survivors[0]!.url, 'GET', '/v1/connectors/gen/status');
        const t = s.tasks[0];
        return t?.state === 'RUNNING' && t.worker && t.worker !== first ? { worker: t.worker, at: Date.now() } : undefined;
      },
      50,
    );
    console.log(
      `source moved from ${first} to ${moved.worker} in ${moved.at - killedAt} ms; stored position at the kill: ${atKill} of ${N}`,
    );
    expect(moved.at - killedAt).toBeLessThan(10_000);
    expect(survivors.map((n) => n.child.pid)).toContain(pidOfWorker(moved.worker));

    await eventually('the final position', 60_000, async () => (seen.at(-1) === N ? true : undefined), 100);
    sampling = false;
    await sampler;
    // Resumed from the stored position: the position never went back (a fresh start would store ~100 first).
    for (let i = 1; i < seen.length; i++)
      expect(seen[i]!, `position went back: ${seen.slice(Math.max(0, i - 3), i + 2).join(' → ')}`).toBeGreaterThan(seen[i - 1]!);
    expect(seen.some((s) => s > atKill)).toBe(true);

    // The station: exactly N messages, seq 1…N once each, in order (one partition, one producer at a time).
    reader = new JetStreamStore({ servers: cluster.servers });
    await reader.open();
    const msgs: { offset: number; value: Uint8Array }[] = [];
    for (let from = 1; ;) {
      const page = await reader.read('gen', { partition: 0, fromOffset: from, limit: 1000 });
      if (page.length === 0) break;
      msgs.push(...page);
      from = page.at(-1)!.offset + 1;
    }
    const seqs = msgs.map((m) => {
      const e = JSON.parse(Buffer.from(m.value).toString('utf8')) as { createdAt: string; orderId: string };
      return Date.parse(e.createdAt) - startMs + 1;
    });
    const distinct = new Set(seqs);
    expect(distinct.size, 'distinct messages').toBe(N);
    expect(msgs.length, 'messages in the station (no duplicates)').toBe(N);
    expect(Math.min(...seqs)).toBe(1);
    expect(Math.max(...seqs)).toBe(N);
    const status = await api<Status>(survivors[1]!.url, 'GET', '/v1/connectors/gen/status');
    console.log(
      `final: ${msgs.length} messages, ${seen.length} distinct positions sampled; task ${status.tasks[0]?.state} on ${status.tasks[0]?.worker}`,
    );

    // Offsets over REST act on the shared store: stop, set on one node, read on another, reset.
    await api(survivors[0]!.url, 'PUT', '/v1/connectors/gen/stop');
    await eventually(
      'stopped',
      20_000,
      async () =>
        (await api<Status>(survivors[1]!.url, 'GET', '/v1/connectors/gen/status')).connector.state === 'STOPPED' ? true : undefined,
      100,
    );
    await api(survivors[0]!.url, 'PATCH', '/v1/connectors/gen/offsets', {
      offsets: [{ partition: { task: 0 }, offset: { seq: 42, startMs } }],
    });
    const other = await api<Offsets>(survivors[1]!.url, 'GET', '/v1/connectors/gen/offsets');
    expect(other.offsets).toEqual([{ partition: { task: 0 }, offset: { seq: 42, startMs } }]);
    await api(survivors[1]!.url, 'DELETE', '/v1/connectors/gen/offsets');
    expect((await api<Offsets>(survivors[0]!.url, 'GET', '/v1/connectors/gen/offsets')).offsets).toEqual([]);
  }, 180_000);
});
