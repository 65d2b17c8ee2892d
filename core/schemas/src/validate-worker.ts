/** The validation worker: compiles schemas it is sent (once each) and checks the items of each job. */
import { parentPort } from 'node:worker_threads';
import { FORMATS } from './formats/index.js';
import type { ParsedSchema, Violation } from './formats/index.js';
import type { CheckAnswer, CheckJob } from './validate-pool.js';

const compiled = new Map<number, ParsedSchema>();

parentPort!.on('message', (job: CheckJob) => {
  const answer: CheckAnswer = { job: job.job, violations: [] };
  try {
    for (const s of job.schemas) if (!compiled.has(s.id)) compiled.set(s.id, FORMATS[s.schemaType].parse(s.schema, s.references));
    const buf = new Uint8Array(job.buf);
    job.items.forEach((it, i) => {
      const schema = compiled.get(it.id);
      if (!schema) {
        answer.violations.push([i, { path: '', reason: `schema ${it.id} was not sent to the worker` } satisfies Violation]);
        return;
      }
      const r = schema.check(buf.subarray(it.start, it.end), it.indexes);
      if (r.ok) return;
      if (it.bareStart !== undefined && schema.check(buf.subarray(it.bareStart, it.end)).ok) return;
      answer.violations.push([i, r.violation]);
    });
  } catch (err) {
    answer.error = (err as Error).message;
  }
  parentPort!.postMessage(answer);
});
