/**
 * @junction/connector-datagen — a source of realistic, seeded events (orders, clicks, logs) for demos
 * and benchmarks. Deterministic: for a seed and start time, message N is always the same bytes, also
 * across restarts (it resumes from its position). See README.md.
 */
import { defineSource } from '@junction/sdk-connector';
import { DatagenConfig } from './config.js';
import { DatagenSource, type DatagenPosition } from './source.js';

export { DatagenConfig } from './config.js';
export type { DatagenPosition } from './source.js';
export { SHAPES, KEY_FIELDS, type Shape } from './shapes.js';

export default defineSource<typeof DatagenConfig, DatagenPosition>({
  name: 'datagen',
  version: '0.1.0',
  sdk: '^1',
  description: 'Realistic generated events (order, click, log), seeded and deterministic, at a set rate or as fast as possible',
  config: DatagenConfig,
  open: (config, ctx) => new DatagenSource(config, ctx),
});
