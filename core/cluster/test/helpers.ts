/** Test helpers: drop everything a store prefix created on a NATS cluster. */
import { connect } from '@nats-io/transport-node';

/** Deletes every stream whose name starts with the prefix's stream prefix, and the prefix's KV bucket. */
export async function dropPrefix(servers: string[], prefix: string): Promise<void> {
  const nc = await connect({ servers, noAsyncTraces: true });
  try {
    const up = `${prefix.toUpperCase()}_`;
    const names: string[] = [];
    for (let offset = 0; ;) {
      const r = (await nc.request('$JS.API.STREAM.NAMES', JSON.stringify({ offset }), { timeout: 10_000 })).json<{
        streams: string[] | null;
        total: number;
        limit: number;
      }>();
      const got = r.streams ?? [];
      names.push(...got);
      offset += got.length;
      if (got.length === 0 || offset >= r.total) break;
    }
    const doomed = names.filter((s) => s.startsWith(up) || s === `KV_${prefix}-meta`);
    await Promise.all(doomed.map((s) => nc.request(`$JS.API.STREAM.DELETE.${s}`, undefined, { timeout: 10_000 }).catch(() => undefined)));
  } finally {
    await nc.close();
  }
}
