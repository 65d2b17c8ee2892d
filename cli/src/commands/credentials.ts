/**
 * Where `junction login` keeps tokens: `$XDG_CONFIG_HOME/junction/credentials` or
 * `~/.config/junction/credentials` (0600, its folder 0700), JSON keyed by broker URL.
 */
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { homedir } from 'node:os';

export interface StoredSession {
  token: string;
  refreshToken?: string | undefined;
  expiresAt?: string | undefined;
}

export function credentialsPath(env: Readonly<Record<string, string | undefined>>): string {
  const base = env['XDG_CONFIG_HOME'] || join(env['HOME'] || homedir(), '.config');
  return join(base, 'junction', 'credentials');
}

export async function readCredentials(path: string): Promise<Record<string, StoredSession>> {
  try {
    const parsed: unknown = JSON.parse(await readFile(path, 'utf8'));
    return parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Record<string, StoredSession>) : {};
  } catch {
    return {};
  }
}

/** Stores `session` for `url` (0600, written to a temp file and renamed: never half a file). */
export async function saveCredentials(path: string, url: string, session: StoredSession): Promise<void> {
  const all = await readCredentials(path);
  all[url] = session;
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, JSON.stringify(all, null, 2) + '\n', { mode: 0o600 });
  await chmod(tmp, 0o600);
  await rename(tmp, path);
}
