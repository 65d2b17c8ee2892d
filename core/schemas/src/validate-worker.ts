/** The validation worker: compiles schemas it is sent (once each) and checks the items of each job. */
import { parentPort } from 'node:worker_threads';
import { FORMATS } from './formats/index.js';
import type { ParsedSchema, Violation } from './formats/index.js';
import { ITEM_FIELDS } from './validate-pool.js';
import type { CheckAnswer, CheckJob } from './validate-pool.js';

const compiled = new Map<number, ParsedSchema>();

parentPort!.on('message', (job: CheckJob) => {
  const answer: CheckAnswer = { job: job.job, violations: [] };
  try {
    for (const s of job.schemas) if (!compiled.has(s.id)) compiled.set(s.id, FORMATS[s.schemaType].parse(s.schema, s.references));
    const buf = new Uint8Array(job.buf);
    const { count, nums } = job.items;
    const indexes = job.items.indexes ? new Map(job.items.indexes) : undefined;
    for (let i = 0; i < count; i++) {
      const o = i * ITEM_FIELDS;
      const id = nums[o]!;
      const end = nums[o + 2]!;
      const bareStart = nums[o + 3]!;
      const schema = compiled.get(id);
      if (!schema) {
        answer.violations.push([i, { path: '', reason: `schema ${id} was not sent to the worker` } satisfies Violation]);
        continue;
      }
      const r = schema.check(buf.subarray(nums[o + 1]!, end), indexes?.get(i));
      if (r.ok) continue;
      if (bareStart >= 0 && schema.check(buf.subarray(bareStart, end)).ok) continue;
      answer.violations.push([i, r.violation]);
    }
  } catch (err) {
    answer.error = (err as Error).message;
  }
  // The buffer goes back to the pool, to carry a later batch.
  answer.buf = job.buf;
  parentPort!.postMessage(answer, [job.buf]);
});
