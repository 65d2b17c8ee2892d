/**
 * The auth store of a cluster: users, tokens and sessions as one document in the cluster's metadata
 * bucket (JetStream KV, key `a.state`), the JWT secret beside it (`a.secret`, made once by whichever
 * node comes first). Every node keeps the document in memory and follows the bucket's watch, so a
 * revocation on one node applies on the others as soon as the change arrives (milliseconds; the test
 * holds it to 2 s). Writes are compare-and-set on the key's revision: two nodes changing users at once
 * both land (the loser redoes its change on the newer state).
 *
 * The secret and the password hashes are as safe as the NATS cluster: keep NATS private (it holds all
 * the messages too) and give it credentials (`cluster.nats.user` / `pass` / `token`, TLS).
 */
import { randomBytes } from 'node:crypto';
import { AuthState, emptyState } from '@junction/auth';
import type { AuthStore, VersionedState } from '@junction/auth';
import type { JetStreamStore } from '@junction/cluster';
import { JunctionError } from './errors.js';

const STATE = 'state';
const SECRET = 'secret';

export class ClusterAuthStore implements AuthStore {
  private readonly meta: ReturnType<JetStreamStore['authMeta']>;
  constructor(store: JetStreamStore) {
    this.meta = store.authMeta();
  }

  async load(): Promise<VersionedState> {
    const r = await this.meta.read(STATE);
    if (r.value === undefined) return { state: emptyState(), rev: r.rev };
    return { state: parse(r.value), rev: r.rev };
  }

  async save(state: AuthState, rev: number): Promise<number | undefined> {
    return this.meta.update(STATE, state, rev);
  }

  watch(listener: (v: VersionedState) => void): () => void {
    return this.meta.onChange((key, rev, value) => {
      if (key !== STATE || value === undefined) return;
      try {
        listener({ state: parse(value), rev });
      } catch {
        // A document this node cannot read is ignored here; load() reports it.
      }
    });
  }

  async secrets(): Promise<Buffer[]> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const cur = await this.meta.read(SECRET);
      const keys = (cur.value as { keys?: unknown } | undefined)?.keys;
      if (Array.isArray(keys) && keys.length > 0 && keys.every((k) => typeof k === 'string'))
        return keys.map((k: string) => Buffer.from(k, 'base64'));
      // First node: make it (compare-and-set on "no value yet"; another node may win, then read theirs).
      await this.meta.update(SECRET, { keys: [randomBytes(32).toString('base64')] }, cur.rev);
    }
    throw new JunctionError('AUTH_STATE_CORRUPT', 'cannot read or create the JWT secret in the cluster metadata bucket');
  }
}

function parse(value: unknown): AuthState {
  const r = AuthState.safeParse(value);
  if (!r.success)
    throw new JunctionError(
      'AUTH_STATE_CORRUPT',
      `the auth state in the cluster metadata bucket is invalid: ${r.error.issues[0]?.message ?? ''}`,
    );
  return r.data;
}
