// Shared by the test plugins: an attempt counter that works across worker threads and worker
// restarts (mkdir is atomic), and a record of what a sink wrote (one line per offset).
import { appendFileSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

/** 0 on the first call (in any thread), 1 on the second, … */
export function nextAttempt(dir) {
  const base = join(dir, 'attempts');
  mkdirSync(base, { recursive: true });
  for (let i = readdirSync(base).length; ; i++) {
    try {
      mkdirSync(join(base, String(i)));
      return i;
    } catch (err) {
      if (err.code !== 'EEXIST') throw err;
    }
  }
}

/** Appends `<partition> <offset>` per message to <dir>/written.log. */
export function record(dir, batch) {
  mkdirSync(dir, { recursive: true });
  appendFileSync(join(dir, 'written.log'), batch.messages.map((m) => `${batch.partition} ${m.offset}\n`).join(''));
}

/** Appends one line per write call: `<partition> <first> <last> <count>` to <dir>/batches.log. */
export function recordBatch(dir, batch) {
  mkdirSync(dir, { recursive: true });
  appendFileSync(join(dir, 'batches.log'), `${batch.partition} ${batch.firstOffset} ${batch.lastOffset} ${batch.messages.length}\n`);
}
