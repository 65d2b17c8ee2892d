/**
 * Reading back what the file sink wrote — for tests, the benchmark and tools. Not used by the sink.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { parseDataFileName } from './layout.js';

/** One line of a data file, its value decoded back to the original bytes. */
export interface FileRecord {
  station: string;
  partition: number;
  offset: number;
  timestamp: number;
  key: string | null;
  headers: Record<string, string>;
  value: Buffer;
  /**
   * The station incarnation of its file (`stationIdSegment` of the station's id), or null for a file
   * written before station ids (see the partition directory's `.junction-legacy-owner`).
   */
  stationId: string | null;
  /** The file it was read from, relative to the sink's dir. */
  file: string;
}

/**
 * Every record of every data file under `dir` (temp files and foreign files are skipped), in
 * station, partition, file-name (= first offset) and line order. Throws on a malformed line.
 */
export async function readFileSink(dir: string): Promise<FileRecord[]> {
  const out: FileRecord[] = [];
  const stations = await readdir(dir, { withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [];
    throw err;
  });
  for (const s of stations.filter((d) => d.isDirectory()).sort((a, b) => a.name.localeCompare(b.name))) {
    const partitions = await readdir(join(dir, s.name), { withFileTypes: true });
    for (const p of partitions.filter((d) => d.isDirectory() && /^\d+$/.test(d.name)).sort((a, b) => Number(a.name) - Number(b.name))) {
      const names = (await readdir(join(dir, s.name, p.name))).filter((n) => parseDataFileName(n) !== undefined).sort();
      for (const name of names) {
        const stationId = parseDataFileName(name)?.stationId ?? null;
        const file = join(s.name, p.name, name);
        let data = await readFile(join(dir, file));
        if (name.endsWith('.gz')) data = gunzipSync(data);
        const lines = data.toString('utf8').split('\n');
        lines.forEach((line, i) => {
          if (line === '') return;
          let r: {
            offset: number;
            timestamp: number;
            key: string | null;
            headers: Record<string, string>;
            value: string;
            base64?: boolean;
          };
          try {
            r = JSON.parse(line);
          } catch {
            throw new Error(`${file}:${i + 1}: not JSON`);
          }
          out.push({
            station: s.name,
            partition: Number(p.name),
            offset: r.offset,
            timestamp: r.timestamp,
            key: r.key,
            headers: r.headers,
            value: Buffer.from(r.value, r.base64 === true ? 'base64' : 'utf8'),
            stationId,
            file,
          });
        });
      }
    }
  }
  return out;
}
