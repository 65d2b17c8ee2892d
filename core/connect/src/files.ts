/**
 * Small durable-file helpers: JSON written atomically (temp + fsync + rename + directory fsync), owner-only
 * (files 0600, folders 0700: they hold connector configuration), and directories made without Node 20's
 * recursive mkdir (which spins forever on a path under /proc).
 */
import { chmod, lstat, mkdir, readdir, rm, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { previousCopy, readWithFallback, writeAtomic } from '@junction/broker';
import { makeDirs as makeDirsOf } from '@junction/sdk-connector';

/** `mkdir -p` (the SDK's, which cannot spin under /proc) with owner-only folders by default. */
export function makeDirs(path: string, mode = 0o700): Promise<void> {
  return makeDirsOf(path, mode);
}

/**
 * Narrows everything under `dir` (itself included) to its owner: folders 0700, files 0600. Files written
 * by older versions were 0644. Symbolic links are left alone. Resolves with how many entries it changed;
 * a missing `dir` changes nothing.
 */
export async function restrictTree(dir: string): Promise<number> {
  let changed = 0;
  const visit = async (path: string): Promise<void> => {
    let st;
    try {
      st = await lstat(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    if (st.isSymbolicLink()) return;
    const want = st.isDirectory() ? 0o700 : 0o600;
    if ((st.mode & 0o777) !== want && (st.mode & 0o077) !== 0) {
      await chmod(path, want);
      changed++;
    }
    if (st.isDirectory()) for (const name of await readdir(path)) await visit(join(path, name));
  };
  await visit(dir);
  return changed;
}

/**
 * Writes `value` as JSON to `path` atomically and owner-only (0600): a reader sees the old file or the new
 * one, never a torn one, and the version replaced is kept as `<path>.prev` (readJsonWithFallback).
 */
export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  await makeDirs(dirname(path));
  await writeAtomic(path, `${JSON.stringify(value, null, 2)}\n`, { mode: 0o600 });
}

/** What readJsonWithFallback found. */
export type JsonRead<T> =
  | { value: T; source: 'file' | 'previous-copy'; problem?: string | undefined }
  | { value: undefined; missing: true }
  | { value: undefined; missing: false; problem: string };

/**
 * The JSON file at `path`, checked by `accept` (which throws on content it does not take); when it is
 * missing, empty, malformed or refused, its previous copy (`source: 'previous-copy'`, with the file's
 * problem). `missing` when neither exists (a first start); a `problem` when something is there but
 * neither version is usable — damage, never to be taken for "nothing stored".
 */
export async function readJsonWithFallback<T>(path: string, accept: (value: unknown) => T): Promise<JsonRead<T>> {
  const r = await readWithFallback(path, (text) => accept(JSON.parse(text) as unknown));
  if ('source' in r) return r;
  return r.missing ? { value: undefined, missing: true } : { value: undefined, missing: false, problem: r.problem };
}

/** Removes a file written by writeJsonAtomic, and its previous copy (else a read would fall back to it). */
export async function removeFile(path: string): Promise<void> {
  await rm(path, { force: true });
  await rm(previousCopy(path), { force: true });
}
