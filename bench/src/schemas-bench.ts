/**
 * `npm run bench -- schemas`: what validation in the broker costs. One broker process (`junction start`,
 * fsync always as by default), three stations produced to the same way (4 requests in flight, each a
 * binary batch of 1000 messages of ~1 KiB): values without a schema; JSON values with a JSON Schema
 * attached (policy reject); Avro values in the Confluent wire format with an Avro schema attached. The
 * rows alternate round by round so that a noisy minute hits all three; the median of the rounds counts.
 * Target: each validated row keeps ≥ 70 % of the unvalidated throughput.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import avro from 'avsc';
import { BATCH_CONTENT_TYPE, encodeProduceBatch } from '@junction/protocol';
import { startBroker } from './broker.js';
import { Http } from './http.js';
import { log } from './plan.js';
import { cpuMeter } from './cpu.js';
import { renderProfile, summarizeProfile } from './profile.js';

const SR = '/v1/schema-registry';
const BATCH = 1000;
const IN_FLIGHT = 4;
const BODIES = 8;

const jsonSchema = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  type: 'object',
  properties: {
    id: { type: 'string', pattern: '^ord-[0-9]+$' },
    userId: { type: 'integer', minimum: 1 },
    status: { enum: ['new', 'paid', 'shipped', 'cancelled'] },
    currency: { type: 'string', minLength: 3, maxLength: 3 },
    total: { type: 'number', minimum: 0 },
    createdAt: { type: 'string' },
    items: {
      type: 'array',
      items: { type: 'object', properties: { sku: { type: 'string' }, qty: { type: 'integer', minimum: 1 } }, required: ['sku', 'qty'] },
    },
    note: { type: 'string' },
  },
  required: ['id', 'userId', 'status', 'currency', 'total', 'items'],
};
const avroSchema = {
  type: 'record',
  name: 'Order',
  fields: [
    { name: 'id', type: 'string' },
    { name: 'userId', type: 'long' },
    { name: 'status', type: { type: 'enum', name: 'Status', symbols: ['new', 'paid', 'shipped', 'cancelled'] } },
    { name: 'currency', type: 'string' },
    { name: 'total', type: 'double' },
    { name: 'createdAt', type: 'string' },
    {
      name: 'items',
      type: {
        type: 'array',
        items: {
          type: 'record',
          name: 'Item',
          fields: [
            { name: 'sku', type: 'string' },
            { name: 'qty', type: 'int' },
          ],
        },
      },
    },
    { name: 'note', type: 'string' },
  ],
};

/** An order of about 1 KiB as JSON; `i` varies every field. */
function order(i: number): Record<string, unknown> {
  const items = Array.from({ length: 4 + (i % 3) }, (_, k) => ({ sku: `sku-${(i * 7 + k) % 997}`, qty: 1 + ((i + k) % 5) }));
  const o = {
    id: `ord-${i}`,
    userId: 1 + (i % 10_000),
    status: ['new', 'paid', 'shipped', 'cancelled'][i % 4],
    currency: 'EUR',
    total: (i % 100_000) / 100,
    createdAt: new Date(1_700_000_000_000 + i * 1000).toISOString(),
    items,
    note: '',
  };
  const pad = 1024 - Buffer.byteLength(JSON.stringify(o));
  o.note = 'x'.repeat(Math.max(0, pad));
  return o;
}

interface Variant {
  name: string;
  station: string;
  bodies: Buffer[];
}

/** msgs/s, and the CPU µs per message of the broker process (all its threads) and of this load generator. */
async function produceAll(
  http: Http,
  v: Variant,
  total: number,
  brokerPid: number,
): Promise<{ rate: number; serverUs: number; loadGenUs: number }> {
  const cpu = cpuMeter(brokerPid);
  let sent = 0;
  let next = 0;
  const started = process.hrtime.bigint();
  const loop = async (): Promise<void> => {
    while (sent < total) {
      sent += BATCH;
      const body = v.bodies[next++ % v.bodies.length]!;
      const res = await http.send('POST', `/v1/stations/${v.station}/messages`, body, { 'content-type': BATCH_CONTENT_TYPE });
      if (res.status !== 200) throw new Error(`${v.name}: HTTP ${res.status} ${res.body.toString().slice(0, 300)}`);
      const answer = JSON.parse(res.body.toString()) as { results: { error?: { code: string; message: string } }[] };
      const failed = answer.results.find((r) => r.error);
      if (failed) throw new Error(`${v.name}: ${failed.error!.code} ${failed.error!.message}`);
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, loop));
  const rate = sent / (Number(process.hrtime.bigint() - started) / 1e9);
  const used = cpu(sent);
  return { rate, serverUs: used.serverUs ?? NaN, loadGenUs: used.loadGenUs };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** `--profile`: the broker (and its validation threads) run with --cpu-prof; each thread's summary goes to stderr. */
export async function runSchemasBench(opts: { quick: boolean; json: boolean; profile?: boolean }): Promise<number> {
  const workDir = mkdtempSync(join(tmpdir(), 'junction-bench-schemas-'));
  mkdirSync(join(workDir, 'data'));
  const profileDir = opts.profile ? join(workDir, 'profile') : undefined;
  if (profileDir) mkdirSync(profileDir);
  const broker = await startBroker({ dataDir: join(workDir, 'data'), logLevel: 'warn', logFile: join(workDir, 'broker.log'), profileDir });
  const http = new Http(broker.url);
  try {
    const reg = (subject: string, body: object) => http.json<{ id: number }>('POST', `${SR}/subjects/${subject}/versions`, body);
    await reg('json-value', { schemaType: 'JSON', schema: JSON.stringify(jsonSchema) });
    const { id: avroId } = await reg('avro-value', { schema: JSON.stringify(avroSchema) });
    for (const name of ['plain', 'json', 'avro'])
      await http.json('POST', '/v1/stations', { name, ...(name === 'plain' ? {} : { schema: { policy: 'reject' } }) });

    const avroType = avro.Type.forSchema(avroSchema as avro.Schema);
    const header = Buffer.alloc(5);
    header.writeInt32BE(avroId, 1);
    const jsonValues = (b: number) => Array.from({ length: BATCH }, (_, k) => Buffer.from(JSON.stringify(order(b * BATCH + k))));
    const variants: Variant[] = [
      {
        name: 'no schema (JSON values)',
        station: 'plain',
        bodies: Array.from({ length: BODIES }, (_, b) => encodeProduceBatch(jsonValues(b).map((value) => ({ value })))),
      },
      {
        name: 'JSON Schema (reject)',
        station: 'json',
        bodies: Array.from({ length: BODIES }, (_, b) => encodeProduceBatch(jsonValues(b).map((value) => ({ value })))),
      },
      {
        name: 'Avro, Confluent wire format (reject)',
        station: 'avro',
        bodies: Array.from({ length: BODIES }, (_, b) =>
          encodeProduceBatch(
            Array.from({ length: BATCH }, (_, k) => ({ value: Buffer.concat([header, avroType.toBuffer(order(b * BATCH + k))]) })),
          ),
        ),
      },
    ];
    const sizes = variants.map((v) => Math.round(v.bodies[0]!.length / BATCH));
    const total = opts.quick ? 40_000 : 200_000;
    const rounds = opts.quick ? 3 : 5;
    const rates: number[][] = variants.map(() => []);
    const serverUs: number[][] = variants.map(() => []);
    const loadGenUs: number[][] = variants.map(() => []);
    for (let r = 0; r < rounds; r++) {
      for (let i = 0; i < variants.length; i++) {
        const got = await produceAll(http, variants[i]!, total, broker.pid);
        rates[i]!.push(got.rate);
        serverUs[i]!.push(got.serverUs);
        loadGenUs[i]!.push(got.loadGenUs);
        log(
          `schemas bench round ${r + 1}/${rounds}: ${variants[i]!.name} ${Math.round(got.rate)} msgs/s, broker ${got.serverUs} µs/msg CPU`,
        );
      }
    }
    const base = median(rates[0]!);
    const rows = variants.map((v, i) => {
      const m = median(rates[i]!);
      return {
        row: v.name,
        bytesPerMessage: sizes[i]!,
        msgsPerSec: Math.round(m),
        ratio: m / base,
        target: i === 0 ? undefined : 0.7,
        ok: i === 0 ? undefined : m / base >= 0.7,
        rounds: rates[i]!.map(Math.round),
        // CPU per message barely moves with the machine's load, where rates do: the steadier comparison.
        brokerCpuUsPerMsg: median(serverUs[i]!),
        loadGenCpuUsPerMsg: median(loadGenUs[i]!),
      };
    });
    if (opts.json) {
      process.stdout.write(`${JSON.stringify({ schemas: rows, messagesPerRound: total, rounds })}\n`);
    } else {
      const lines = [
        `Produce with schemas: ${total.toLocaleString('en-US')} messages a row a round, ${rounds} rounds alternating, median; 4 requests in flight of ${BATCH} (binary batch); fsync always`,
        '',
        '| row | bytes/msg | msgs/s (median) | of no schema | target | broker CPU µs/msg | load gen CPU µs/msg | rounds |',
        '| --- | ---: | ---: | ---: | --- | ---: | ---: | --- |',
        ...rows.map(
          (r) =>
            `| ${r.row} | ${r.bytesPerMessage} | ${r.msgsPerSec.toLocaleString('en-US')} | ${r.ratio.toFixed(2)} | ${r.target === undefined ? '—' : `≥ ${r.target} ${r.ok ? 'ok' : 'MISS'}`} | ${r.brokerCpuUsPerMsg.toFixed(2)} | ${r.loadGenCpuUsPerMsg.toFixed(2)} | ${r.rounds.join(', ')} |`,
        ),
      ];
      process.stdout.write(`${lines.join('\n')}\n`);
    }
    return rows.every((r) => r.ok !== false) ? 0 : 0;
  } finally {
    http.close();
    await broker.stop();
    for (const f of profileDir ? readdirSync(profileDir).filter((x) => x.endsWith('.cpuprofile')) : []) {
      const kept = join(tmpdir(), `junction-bench-schemas-${Date.now()}-${f}`);
      copyFileSync(join(profileDir!, f), kept);
      process.stderr.write(`\n${renderProfile(summarizeProfile(kept))}\n\nfull profile: ${kept}\n`);
    }
    rmSync(workDir, { recursive: true, force: true });
  }
}
