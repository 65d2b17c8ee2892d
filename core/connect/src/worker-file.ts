/** Where the worker entries are: beside this module when running from dist, else in ../dist (tests run from src). */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export function workerFile(name: 'sink-worker.js' | 'source-worker.js'): string {
  const here = fileURLToPath(new URL(`./${name}`, import.meta.url));
  if (existsSync(here)) return here;
  const dist = fileURLToPath(new URL(`../dist/${name}`, import.meta.url));
  if (existsSync(dist)) return dist;
  throw new Error(`worker entry ${name} not found (build @junction/connect with tsc -b)`);
}
