/**
 * Secrets at rest. A secret given literally (over the API or in junction.yaml) is stored **sealed**:
 * encrypted with AES-256-GCM (node:crypto) under a key kept outside the data it protects, bound to the
 * connector and the field it belongs to (the GCM associated data), as the string
 * `${sealed:v1:<key id>:<base64url(iv ‖ ciphertext ‖ tag)>}`. References (`${env:…}`, `${file:…}`) are
 * stored as they are: they name, not reveal.
 *
 * The key: `JUNCTION_SECRETS_KEY` (base64 of 32 bytes; several comma-separated, the first one current),
 * else a key file (one base64 key per line, the first one current; `server.secretsKeyFile`, by default
 * `$XDG_CONFIG_HOME/junction/secrets.key` or `~/.config/junction/secrets.key`), created with mode 0600 the
 * first time a secret must be sealed. Keys after the first only open values sealed with them: rotation
 * is "put the new key first, keep the old one after it, start once (every sealed value is sealed again
 * with the new key), then drop the old one". In a cluster every node needs the same keys.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { chmod, open, readFile, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { REDACTED, redact } from '@junction/sdk-connector';
import type { ConfigSchema } from '@junction/sdk-connector';
import { connectError } from './errors.js';
import { makeDirs } from './files.js';

/** Codes of sealing: stable, in status traces and API errors. */
export const SealedErrorCode = {
  /** No key could be had (the key file cannot be read or made) while a secret had to be sealed or opened. */
  SECRETS_KEY_UNAVAILABLE: 'SECRETS_KEY_UNAVAILABLE',
  /** JUNCTION_SECRETS_KEY or a line of the key file is not the base64 of 32 bytes. */
  SECRETS_KEY_INVALID: 'SECRETS_KEY_INVALID',
  /** A sealed value names a key this node does not have, or does not open with it (altered, or moved to another connector or field). */
  SECRET_UNSEALABLE: 'SECRET_UNSEALABLE',
} as const;

const SEALED_RE = /^\$\{sealed:v1:([0-9a-f]{8}):([A-Za-z0-9_-]+)\}$/;
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** Whether `v` is a sealed value (`${sealed:v1:…}`). */
export function isSealed(v: unknown): v is string {
  return typeof v === 'string' && SEALED_RE.test(v);
}

/** The id of a key: the first 8 hex digits of its SHA-256 (names the key in sealed values and logs, reveals nothing). */
export function keyId(key: Buffer): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 8);
}

/** Keys to seal with (the first) and to open with (any). */
export class SecretKeyring {
  private readonly keys: Map<string, Buffer>;
  /** The id of the key new values are sealed with. */
  readonly current: string;

  /** @throws SECRETS_KEY_INVALID when there is no key or one is not 32 bytes. */
  constructor(keys: readonly Buffer[]) {
    if (keys.length === 0) throw connectError(SealedErrorCode.SECRETS_KEY_INVALID, 'no secrets key given');
    for (const k of keys)
      if (k.length !== 32)
        throw connectError(
          SealedErrorCode.SECRETS_KEY_INVALID,
          `a secrets key must be 32 bytes (base64 of 32 random bytes), got ${k.length}`,
        );
    this.keys = new Map(keys.map((k) => [keyId(k), k]));
    this.current = keyId(keys[0]!);
  }

  /** Seals `plain` for the place `aad` names (the connector and field). */
  seal(plain: string, aad: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.keys.get(this.current)!, iv);
    cipher.setAAD(Buffer.from(aad, 'utf8'));
    const body = Buffer.concat([iv, cipher.update(plain, 'utf8'), cipher.final(), cipher.getAuthTag()]);
    return `\${sealed:v1:${this.current}:${body.toString('base64url')}}`;
  }

  /**
   * Opens a sealed value for the place `aad` names.
   * @throws SECRET_UNSEALABLE when its key is not in the ring, or it was altered or sealed for another place.
   */
  open(sealed: string, aad: string): string {
    const m = SEALED_RE.exec(sealed);
    if (!m) throw connectError(SealedErrorCode.SECRET_UNSEALABLE, 'not a sealed value');
    const key = this.keys.get(m[1]!);
    if (!key) {
      throw connectError(
        SealedErrorCode.SECRET_UNSEALABLE,
        `sealed with key ${m[1]}, which this node does not have (its current key is ${this.current}); give it JUNCTION_SECRETS_KEY or the key file that holds that key`,
      );
    }
    const body = Buffer.from(m[2]!, 'base64url');
    if (body.length < IV_BYTES + TAG_BYTES) throw connectError(SealedErrorCode.SECRET_UNSEALABLE, 'a sealed value is truncated');
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, body.subarray(0, IV_BYTES));
      decipher.setAAD(Buffer.from(aad, 'utf8'));
      decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
      return Buffer.concat([decipher.update(body.subarray(IV_BYTES, body.length - TAG_BYTES)), decipher.final()]).toString('utf8');
    } catch (err) {
      throw connectError(
        SealedErrorCode.SECRET_UNSEALABLE,
        'a sealed value does not open: it was altered, or sealed for another connector or field',
        { cause: err },
      );
    }
  }

  /** Whether a sealed value is sealed with a key other than the current one (rotation seals it again). */
  isStale(sealed: string): boolean {
    return SEALED_RE.exec(sealed)?.[1] !== this.current;
  }
}

/** Where the key comes from. */
export interface SecretsKeySource {
  /** The value of JUNCTION_SECRETS_KEY, when set: base64 keys, comma- or space-separated, the current one first. */
  key?: string | undefined;
  /** The key file (one base64 key per line, the current one first). Made 0600 when missing. */
  file?: string | undefined;
}

/** `$XDG_CONFIG_HOME/junction/secrets.key`, else `~/.config/junction/secrets.key`: outside any data dir. */
export function defaultSecretsKeyFile(env: Readonly<Record<string, string | undefined>> = process.env): string {
  const base = env.XDG_CONFIG_HOME && env.XDG_CONFIG_HOME.startsWith('/') ? env.XDG_CONFIG_HOME : join(homedir(), '.config');
  return join(base, 'junction', 'secrets.key');
}

function parseKeys(text: string, where: string): Buffer[] {
  const out: Buffer[] = [];
  for (const raw of text.split(/[\s,]+/)) {
    const s = raw.trim();
    if (s === '' || s.startsWith('#')) continue;
    const k = /^[A-Za-z0-9+/_-]+={0,2}$/.test(s) ? Buffer.from(s, 'base64') : Buffer.alloc(0);
    if (k.length !== 32)
      throw connectError(
        SealedErrorCode.SECRETS_KEY_INVALID,
        `${where} holds a key that is not the base64 of 32 bytes (make one with: openssl rand -base64 32)`,
      );
    out.push(k);
  }
  return out;
}

/**
 * The keyring from `source`: the key variable when set, else the key file — made (32 random bytes, mode
 * 0600, its folder 0700) when it does not exist and `create` is true. A key file readable by group or
 * others is narrowed to 0600.
 * @throws SECRETS_KEY_INVALID, SECRETS_KEY_UNAVAILABLE (with the path and the system error), never the key.
 */
export async function loadKeyring(source: SecretsKeySource, create: boolean): Promise<SecretKeyring> {
  if (source.key !== undefined && source.key.trim() !== '') return new SecretKeyring(parseKeys(source.key, 'JUNCTION_SECRETS_KEY'));
  const file = source.file ?? defaultSecretsKeyFile();
  let text: string;
  try {
    text = await readFile(file, 'utf8');
    if (((await stat(file)).mode & 0o077) !== 0) await chmod(file, 0o600);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' || !create) {
      throw connectError(
        SealedErrorCode.SECRETS_KEY_UNAVAILABLE,
        `cannot read the secrets key file ${file} (${code ?? (err as Error).message})`,
        { cause: err },
      );
    }
    text = await makeKeyFile(file);
  }
  const keys = parseKeys(text, `the secrets key file ${file}`);
  if (keys.length === 0) throw connectError(SealedErrorCode.SECRETS_KEY_INVALID, `the secrets key file ${file} holds no key`);
  return new SecretKeyring(keys);
}

async function makeKeyFile(file: string): Promise<string> {
  const text = `${randomBytes(32).toString('base64')}\n`;
  try {
    await makeDirs(dirname(file), 0o700);
    const fh = await open(file, 'wx', 0o600);
    try {
      await fh.writeFile(text);
      await fh.sync();
    } finally {
      await fh.close();
    }
    return text;
  } catch (err) {
    // Made meanwhile by another process (two nodes on one machine): use theirs.
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return readFile(file, 'utf8');
    throw connectError(
      SealedErrorCode.SECRETS_KEY_UNAVAILABLE,
      `cannot create the secrets key file ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
      { cause: err },
    );
  }
}

// ── sealing a connector's config ───────────────────────────────────────────────────────────────────

const ONLY_REFS_RE = /^(?:\$\{(?:env|file):[^}]+\})+$/;

/** The associated data of a secret: the connector and the field, so a sealed value opens nowhere else. */
function placeOf(connector: string, path: string): string {
  return `junction/connector/${connector}/config${path === '' ? '' : `.${path}`}`;
}

function childPath(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  return path === '' ? key : `${path}.${key}`;
}

/** Whether a value at a secret place must be sealed: present, not only references, not sealed already. */
function needsSealing(v: unknown): boolean {
  if (v === undefined || isSealed(v)) return false;
  return !(typeof v === 'string' && ONLY_REFS_RE.test(v));
}

/**
 * Visits the values to seal in `config`: those at the plugin's secret fields (per `schema`), or, without
 * a schema (the plugin is not installed), every string that is not only references.
 */
function secretPlaces(schema: ConfigSchema | undefined, config: unknown, visit: (path: string, value: unknown) => unknown): unknown {
  const walk = (original: unknown, redacted: unknown, path: string): unknown => {
    if (schema ? redacted === REDACTED && original !== REDACTED : typeof original === 'string')
      return needsSealing(original) ? visit(path, original) : original;
    if (Array.isArray(original))
      return original.map((item, i) => walk(item, Array.isArray(redacted) ? redacted[i] : undefined, childPath(path, i)));
    if (original !== null && typeof original === 'object') {
      const o: Record<string, unknown> = {};
      const r = redacted !== null && typeof redacted === 'object' ? (redacted as Record<string, unknown>) : {};
      for (const [k, v] of Object.entries(original)) o[k] = walk(v, r[k], childPath(path, k));
      return o;
    }
    return original;
  };
  return walk(config, schema ? redact(schema, config) : undefined, '');
}

/** Whether `config` holds a secret given literally (so storing it needs the key). */
export function hasLiteralSecrets(schema: ConfigSchema | undefined, config: Record<string, unknown>): boolean {
  let found = false;
  secretPlaces(schema, config, (_p, v) => {
    found = true;
    return v;
  });
  return found;
}

/** A copy of `config` with every literal secret sealed (its JSON text) for `connector`; references and sealed values stay. */
export function sealConfig(
  ring: SecretKeyring,
  connector: string,
  schema: ConfigSchema | undefined,
  config: Record<string, unknown>,
): Record<string, unknown> {
  return secretPlaces(schema, config, (path, v) => ring.seal(JSON.stringify(v), placeOf(connector, path))) as Record<string, unknown>;
}

/** Visits every sealed value of `config` (any depth) with its path; returns the copy `visit` makes. */
function mapSealed(config: unknown, visit: (path: string, sealed: string) => unknown, path = ''): unknown {
  if (isSealed(config)) return visit(path, config);
  if (Array.isArray(config)) return config.map((item, i) => mapSealed(item, visit, childPath(path, i)));
  if (config !== null && typeof config === 'object') {
    const o: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(config)) o[k] = mapSealed(v, visit, childPath(path, k));
    return o;
  }
  return config;
}

/** Whether `config` holds sealed values (so loading it needs the key). */
export function hasSealed(config: unknown): boolean {
  let found = false;
  mapSealed(config, (_p, v) => {
    found = true;
    return v;
  });
  return found;
}

/** Whether `config` holds values sealed with a key other than the ring's current one. */
export function hasStaleSeals(ring: SecretKeyring, config: unknown): boolean {
  let stale = false;
  mapSealed(config, (_p, v) => {
    if (ring.isStale(v)) stale = true;
    return v;
  });
  return stale;
}

/**
 * A copy of `config` with every sealed value opened (back to the value given).
 * @throws SECRET_UNSEALABLE naming the field (never a value).
 */
export function unsealConfig(ring: SecretKeyring, connector: string, config: Record<string, unknown>): Record<string, unknown> {
  return mapSealed(config, (path, v) => {
    try {
      return JSON.parse(ring.open(v, placeOf(connector, path))) as unknown;
    } catch (err) {
      const e = err as Error & { code?: string };
      throw connectError(
        e.code ?? SealedErrorCode.SECRET_UNSEALABLE,
        `connector ${connector}, config${path === '' ? '' : `.${path}`}: ${e.message}`,
        { cause: err },
      );
    }
  }) as Record<string, unknown>;
}
