/**
 * Where users, service tokens and sessions live. `AuthStore` is the contract (one document, read whole,
 * written whole and atomically, compare-and-set on a revision); `FileAuthStore` keeps it in the data
 * dir; core/server adapts the cluster's JetStream KV bucket to it, so every node enforces the same.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readWithFallback, writeAtomic } from '@junction/broker';
import { AuthState, emptyState } from './model.js';
import { AuthErrorCode, JunctionError } from './errors.js';

/** A state and the revision it was read at (0: nothing stored yet). */
export interface VersionedState {
  state: AuthState;
  rev: number;
}

export interface AuthStore {
  /** The newest stored state; an empty one (rev 0) when nothing was ever stored. @throws AUTH_STATE_CORRUPT when it cannot be read. */
  load(): Promise<VersionedState>;
  /**
   * Replaces the stored state whole if it is still at `rev`: the new revision, or undefined when another
   * writer came first (load again and redo the change). When it resolves the new state survives a crash.
   */
  save(state: AuthState, rev: number): Promise<number | undefined>;
  /** Shared stores: called with each newer state another writer stored. */
  watch?(listener: (v: VersionedState) => void): () => void;
  /**
   * The JWT signing secrets, the current one first (the others still verify: rotation without logging
   * everybody out). Made on first use.
   */
  secrets(): Promise<Buffer[]>;
}

export interface FileAuthStoreOptions {
  /** The folder (made 0700): `auth.json` (the state, 0600, with `auth.json.prev`) and `jwt.secret` (0600). */
  dir: string;
  /** fsync writes (default true). */
  sync?: boolean | undefined;
}

/** The state file, written with writeAtomic (a crash leaves the old or the new file, plus the previous copy). */
export class FileAuthStore implements AuthStore {
  readonly dir: string;
  private readonly sync: boolean;
  /** One process owns the file: the revision counts this object's writes. */
  private rev = 0;
  constructor(opts: FileAuthStoreOptions) {
    this.dir = opts.dir;
    this.sync = opts.sync ?? true;
  }

  get statePath(): string {
    return join(this.dir, 'auth.json');
  }

  get secretPath(): string {
    return join(this.dir, 'jwt.secret');
  }

  async load(): Promise<VersionedState> {
    await this.ensureDir();
    const r = await readWithFallback(this.statePath, (text) => AuthState.parse(JSON.parse(text)));
    if (r.value !== undefined) return { state: r.value, rev: this.rev };
    if (r.missing) return { state: emptyState(), rev: this.rev };
    // Never start empty over a damaged file: that would drop every user and token (and re-bootstrap admin).
    throw new JunctionError(AuthErrorCode.AUTH_STATE_CORRUPT, `cannot read ${this.statePath}: ${r.problem}`);
  }

  async save(state: AuthState, rev: number): Promise<number | undefined> {
    if (rev !== this.rev) return undefined;
    await this.ensureDir();
    await writeAtomic(this.statePath, JSON.stringify(state), { mode: 0o600, sync: this.sync });
    return ++this.rev;
  }

  async secrets(): Promise<Buffer[]> {
    await this.ensureDir();
    let text: string | undefined;
    try {
      text = await readFile(this.secretPath, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (text === undefined) {
      const key = randomBytes(32).toString('base64');
      await writeAtomic(this.secretPath, `${key}\n`, { mode: 0o600, keepPrevious: false, sync: this.sync });
      text = key;
    }
    const keys = text
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'))
      .map((l) => Buffer.from(l, 'base64'));
    if (keys.length === 0 || keys.some((k) => k.length < 32)) {
      throw new JunctionError(AuthErrorCode.AUTH_STATE_CORRUPT, `${this.secretPath}: each line must be a base64 key of at least 32 bytes`);
    }
    return keys;
  }

  private async ensureDir(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await chmod(this.dir, 0o700).catch(() => {});
  }
}
