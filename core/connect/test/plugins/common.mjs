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

/**
 * Appends one JSON line per message to <dir>/values.log: offset, key, headers, the value in base64 and
 * whether it lies in shared memory (test-keep and test-lend; sink-handoff.test.ts reads them).
 */
export function recordValues(dir, batch) {
  const lines = batch.messages.map(
    (m) =>
      JSON.stringify({
        offset: m.offset,
        key: m.key ?? null,
        headers: m.headers,
        value: Buffer.from(m.value).toString('base64'),
        shared: m.value.buffer instanceof SharedArrayBuffer,
      }) + '\n',
  );
  appendFileSync(join(dir, 'values.log'), lines.join(''));
}
