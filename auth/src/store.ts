/**
 * Where users, service tokens and sessions live. `AuthStore` is the contract (one document, read whole,
 * written whole and atomically); `FileAuthStore` keeps it in the data dir. A JetStream-KV store for
 * cluster mode implements the same contract (not done yet: the cluster runs without auth).
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readWithFallback, writeAtomic } from '@junction/broker';
import { AuthState, emptyState } from './model.js';
import { AuthErrorCode, JunctionError } from './errors.js';

export interface AuthStore {
  /** The stored state; an empty one when nothing was ever stored. @throws AUTH_STATE_CORRUPT when it cannot be read. */
  load(): Promise<AuthState>;
  /** Replaces the stored state whole; when it resolves the new state survives a crash. */
  save(state: AuthState): Promise<void>;
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

  async load(): Promise<AuthState> {
    await this.ensureDir();
    const r = await readWithFallback(this.statePath, (text) => AuthState.parse(JSON.parse(text)));
    if (r.value !== undefined) return r.value;
    if (r.missing) return emptyState();
    // Never start empty over a damaged file: that would drop every user and token (and re-bootstrap admin).
    throw new JunctionError(AuthErrorCode.AUTH_STATE_CORRUPT, `cannot read ${this.statePath}: ${r.problem}`);
  }

  async save(state: AuthState): Promise<void> {
    await this.ensureDir();
    await writeAtomic(this.statePath, JSON.stringify(state), { mode: 0o600, sync: this.sync });
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
