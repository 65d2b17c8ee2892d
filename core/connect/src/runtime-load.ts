/**
 * Loading the connectors stored by the API (`<dataDir>/connect/connectors.json`; see runtime.ts).
 */
import { rename } from 'node:fs/promises';
import type { Logger } from 'pino';
import { messageOf } from './errors.js';
import { readJsonWithFallback, writeJsonAtomic } from './files.js';
import type { ConnectorsFile, Stored } from './runtime-types.js';

/**
 * The connectors stored by the API: connectors.json, else its previous copy (written back). When
 * neither is usable, the damaged file is moved aside (kept, never overwritten by the next save),
 * the runtime starts without them and says so in `problems` (pushed to) and at error in the log.
 */
export async function loadConnectorsFile(file: string, log: Logger, problems: string[]): Promise<Stored[]> {
  const r = await readJsonWithFallback(file, (raw): Stored[] => {
    const list = (raw as Partial<ConnectorsFile> | null)?.connectors;
    if (!Array.isArray(list)) throw new Error('it holds no connectors list');
    return list;
  });
  if (r.value !== undefined) {
    if (r.source === 'previous-copy') {
      const note = `connectors.json was ${r.problem ?? 'unusable'}: loaded its previous copy (a change made just before may be undone)`;
      problems.push(note);
      log.error({ file }, note);
      await writeJsonAtomic(file, { version: 1, connectors: r.value } satisfies ConnectorsFile).catch((err: unknown) =>
        log.error({ err: messageOf(err), file }, 'could not write back connectors.json'),
      );
    }
    return r.value;
  }
  if (r.missing) return [];
  const aside = `${file}.damaged-${Date.now()}`;
  await rename(file, aside).catch(() => {});
  const note = `connectors.json and its previous copy are ${r.problem}: the connectors created over the API are not loaded; the damaged file is kept as ${aside}`;
  problems.push(note);
  log.error({ file, aside }, note);
  return [];
}
