/** The Snowflake sink against the SDK's conformance kit, on the local fake with the real snowflake-sdk. */
import { afterAll, describe, expect, it } from 'vitest';
import { assertConformance, fakeContext, runSinkConformance, sinkConformanceSuite } from '@junction/sdk-connector/testing';
import plugin from '../src/index.js';
import { forgetRequestsInFlight } from '../src/sink.js';
import { FakeSnowflake } from '../../../test/fakes/snowflake/server.js';
import { config, query } from './helpers.js';

const fake = await new FakeSnowflake().start();
afterAll(() => fake.close());

sinkConformanceSuite(
  { describe, it },
  {
    plugin,
    config: config(fake, { table: 'KIT_RAW', writeTimeoutMs: 2000 }),
    readBack: async () => (await query(fake, 'SELECT "VALUE" FROM "DB"."PUBLIC"."KIT_RAW"')).map((r) => JSON.stringify(r.VALUE)),
    deadLetter: { value: '{"broken json' },
    // Snowflake answering 503 for as long as it likes: the driver retries on its own, the sink answers
    // retry() at its writeTimeoutMs, and the statement it gave up on is fenced until the driver settles it.
    retry: {
      breakDestination: async () => {
        fake.fail(503, 1000);
        return async () => fake.heal();
      },
    },
    // An INSERT held by the warehouse across its writer's death, run after the replay.
    lateWrite: { hold: async () => fake.holdWrites(), afterKill: forgetRequestsInFlight },
    timeoutMs: 20_000,
  },
);

describe('snowflake sink conformance in mode columns', () => {
  it('passes every check', async () => {
    const results = await runSinkConformance({
      plugin,
      config: config(fake, {
        table: 'KIT_COLUMNS',
        mode: 'columns',
        writeTimeoutMs: 2000,
        columns: [
          { name: 'junctionConformance', type: 'VARCHAR' },
          { name: 'station', type: 'VARCHAR' },
          { name: 'partition', type: 'NUMBER' },
          { name: 'offset', type: 'NUMBER' },
          { name: 'text', type: 'VARCHAR' },
          // The kit's station-identity check writes a second incarnation's messages with "incarnation": 2.
          { name: 'incarnation', type: 'NUMBER' },
        ],
      }),
      readBack: async () =>
        (await query(fake, 'SELECT * FROM "DB"."PUBLIC"."KIT_COLUMNS"')).map((r) =>
          JSON.stringify({
            junctionConformance: r.JUNCTIONCONFORMANCE,
            station: r.STATION,
            partition: Number(r.PARTITION),
            offset: Number(r.OFFSET),
            text: r.TEXT,
            ...(r.INCARNATION == null ? {} : { incarnation: Number(r.INCARNATION) }),
          }),
        ),
      // NUMBER column, text value: Snowflake's "Numeric value … is not recognized".
      deadLetter: { value: '{"offset":"not-a-number"}' },
      retry: {
        breakDestination: async () => {
          fake.fail(503, 1000);
          return async () => fake.heal();
        },
      },
      // An INSERT held by the warehouse across its writer's death, run after the replay.
      lateWrite: { hold: async () => fake.holdWrites(), afterKill: forgetRequestsInFlight },
      // An INSERT held by the warehouse across its writer's death, run after the replay.
      lateWrite: { hold: async () => fake.holdWrites(), afterKill: forgetRequestsInFlight },
      timeoutMs: 20_000,
    });
    assertConformance(results);
    // The kit's wedge checks that need cases these options do not give yet (unusable, retry.config, stall) are not applicable.
    expect(results.filter((r) => r.status !== 'passed').map((r) => r.check)).toEqual([
      'open-unusable',
      'open-unreachable',
      'write-stalled-abort',
    ]);
  });
});

/** The kit's values as a station schema (JSON Schema): mode schema makes its table from it. */
const KIT_VERSION = {
  subject: 'kit-value',
  version: 1,
  id: 1,
  schemaType: 'JSON' as const,
  references: [],
  schema: JSON.stringify({
    type: 'object',
    properties: {
      junctionConformance: { type: 'string' },
      station: { type: 'string' },
      partition: { type: 'integer' },
      offset: { type: 'integer' },
      text: { type: 'string' },
      incarnation: { type: 'integer' },
    },
  }),
};
const kitContext = () => fakeContext({ schema: { ...KIT_VERSION, versions: [KIT_VERSION] } });

describe('snowflake sink conformance in mode schema', () => {
  it('passes every check', async () => {
    const results = await runSinkConformance({
      plugin,
      context: kitContext,
      config: config(fake, { table: 'KIT_SCHEMA', mode: 'schema', writeTimeoutMs: 2000 }),
      readBack: async () =>
        (await query(fake, 'SELECT * FROM "DB"."PUBLIC"."KIT_SCHEMA"')).map((r) =>
          JSON.stringify({
            junctionConformance: r.JUNCTIONCONFORMANCE,
            station: r.STATION,
            partition: Number(r.PARTITION),
            offset: Number(r.OFFSET),
            text: r.TEXT,
            ...(r.INCARNATION == null ? {} : { incarnation: Number(r.INCARNATION) }),
          }),
        ),
      // Not JSON: it does not decode with the station schema.
      deadLetter: { value: '{"broken json' },
      retry: {
        breakDestination: async () => {
          fake.fail(503, 1000);
          return async () => fake.heal();
        },
      },
      lateWrite: { hold: async () => fake.holdWrites(), afterKill: forgetRequestsInFlight },
      timeoutMs: 20_000,
    });
    assertConformance(results);
    expect(results.filter((r) => r.status !== 'passed').map((r) => r.check)).toEqual([
      'open-unusable',
      'open-unreachable',
      'write-stalled-abort',
    ]);
  });
});
