/** The datagen source's config. */
import { z } from '@junction/sdk-connector';
import { KEY_FIELDS, SHAPES } from './shapes.js';

export const DatagenConfig = z
  .strictObject({
    shape: z.enum(SHAPES).default('order').describe('The kind of event: order, click or log'),
    seed: z.int().min(0).max(4_294_967_295).default(1).describe('Same seed (and start time) → same events, byte for byte'),
    ratePerSec: z.number().positive().max(10_000_000).optional().describe('Messages per second; absent: as fast as the station takes them'),
    batchSize: z.int().min(1).max(10_000).default(100).describe('Most messages per batch (fewer at low rates, to keep the flow smooth)'),
    maxMessages: z.int().min(1).optional().describe('Stop after this many messages in total (across restarts); absent: never stop'),
    keyField: z.string().optional().describe('A top-level field of the event whose value becomes the message key'),
    startTime: z
      .union([z.literal('now'), z.iso.datetime({ offset: true })])
      .default('now')
      .describe(
        'Time of the first event: "now" (fixed at the first start and kept in the position) or an ISO date-time for a fully reproducible stream',
      ),
    padTo: z.int().min(0).max(1_048_576).optional().describe('Pad each event with a "pad" field to at least this many bytes (benchmarks)'),
  })
  .superRefine((c, ctx) => {
    if (c.keyField !== undefined && !KEY_FIELDS[c.shape].includes(c.keyField)) {
      ctx.addIssue({
        code: 'custom',
        path: ['keyField'],
        message: `must be one of ${KEY_FIELDS[c.shape].join(', ')} for shape ${c.shape}`,
      });
    }
  });
export type DatagenConfig = z.output<typeof DatagenConfig>;
