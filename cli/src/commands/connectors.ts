import { InvalidArgumentError, type Command } from 'commander';
import type { StartPosition } from '@junction/client';
import { intArg } from '../args.js';
import { CliError, CliErrorCode } from '../errors.js';
import { write, type CliIo } from '../io.js';
import { withClient } from './client.js';

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  ')).join('\n') + '\n';
}

/** `--to-time`: an ISO 8601 time with a zone (`2026-12-07T08:00:00Z`, `…+01:00`) or ms since the epoch. */
export function timeArg(value: string): number {
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v);
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/i.test(v))
    throw new InvalidArgumentError('must be an ISO 8601 time with a zone (2026-12-07T08:00:00Z) or ms since the epoch');
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new InvalidArgumentError('is not a valid time');
  return t;
}

interface ResetFlags {
  toOffset?: number;
  partition?: number;
  toTime?: number;
  toEarliest?: boolean;
  toLatest?: boolean;
  json?: boolean;
}

/** The position the reset flags name (exactly one of them). */
export function positionOf(f: ResetFlags): StartPosition {
  const given = [f.toOffset !== undefined, f.toTime !== undefined, f.toEarliest === true, f.toLatest === true].filter(Boolean).length;
  if (given !== 1) throw new CliError(CliErrorCode.USAGE, 'give exactly one of --to-offset, --to-time, --to-earliest, --to-latest');
  if (f.partition !== undefined && f.toOffset === undefined) throw new CliError(CliErrorCode.USAGE, '--partition goes with --to-offset');
  if (f.toOffset !== undefined) return { type: 'offset', offset: f.toOffset, ...(f.partition !== undefined && { partition: f.partition }) };
  if (f.toTime !== undefined) return { type: 'timestamp', timestamp: f.toTime };
  return { type: f.toEarliest ? 'earliest' : 'latest' };
}

function offsetRows(offsets: { partition: Record<string, unknown>; offset: unknown }[]): string {
  const rows = offsets.map((o) => {
    const p = o.partition;
    const off = o.offset as { offset?: unknown } | null;
    return p['task'] !== undefined
      ? [`task ${String(p['task'])}`, JSON.stringify(o.offset)]
      : [String(p['partition']), String(off?.offset ?? JSON.stringify(o.offset))];
  });
  return table([['PARTITION', 'OFFSET'], ...rows]);
}

/** `junction connectors list|status|start|stop|pause|resume|offsets`: the connectors of a running broker (`/v1/connectors`). */
export function connectorsCommand(program: Command, io: CliIo): void {
  const connectors = program
    .command('connectors')
    .description('list connectors, show their status, start / stop them, read and reset their offsets');

  const states = [
    [
      'start',
      'resume',
      'start a connector created stopped (state: STOPPED) or stopped / paused since: its tasks run (same as resume)',
      'RUNNING',
    ],
    ['resume', 'resume', 'resume a paused or stopped connector', 'RUNNING'],
    ['pause', 'pause', 'pause a connector: its tasks end, its offsets stay', 'PAUSED'],
    ['stop', 'stop', 'stop a connector: its tasks end; while STOPPED its offsets may be reset', 'STOPPED'],
  ] as const;
  for (const [verb, action, description, target] of states) {
    connectors
      .command(`${verb} <name>`)
      .description(description)
      .action(async (name: string, _flags: object, command: Command) => {
        await withClient(command, (client) => client.setConnectorState(name, action), io.env);
        await write(io.stdout, `connector ${name}: target state ${target}\n`);
      });
  }

  const offsets = connectors.command('offsets').description('read and reset a connector’s offsets (Kafka Connect KIP-875)');
  offsets
    .command('get <name>')
    .description('a sink’s next offset per partition of its station; a source’s stored position per task')
    .option('--json', 'print the API’s answer as JSON')
    .action(async (name: string, flags: { json?: boolean }, command: Command) => {
      const got = await withClient(command, (client) => client.connectorOffsets(name), io.env);
      await write(io.stdout, flags.json ? JSON.stringify(got, null, 2) + '\n' : offsetRows(got.offsets));
    });
  offsets
    .command('reset <name>')
    .description(
      'move a STOPPED connector’s offsets (`connectors stop` first; `connectors start` after): a sink re-reads from there. ' +
        '--to-time: per partition, the first message at or after that time. A source only takes --to-earliest (its positions are forgotten)',
    )
    .option('--to-offset <n>', 'this offset (the next one processed) on every partition, or on --partition', intArg(1))
    .option('--partition <p>', 'with --to-offset: only this partition', intArg(0))
    .option('--to-time <time>', 'the first message at or after this time (ISO 8601 with a zone, or ms since the epoch)', timeArg)
    .option('--to-earliest', 'the first retained message')
    .option('--to-latest', 'the end: only messages produced from now on')
    .option('--json', 'print the API’s answer as JSON')
    .action(async (name: string, flags: ResetFlags, command: Command) => {
      const to = positionOf(flags);
      const res = await withClient(command, (client) => client.setConnectorOffsets(name, { to }), io.env);
      if (flags.json) await write(io.stdout, JSON.stringify(res, null, 2) + '\n');
      else await write(io.stdout, `${res.message}\n${res.offsets && res.offsets.length > 0 ? offsetRows(res.offsets) : ''}`);
    });

  connectors
    .command('list')
    .description('list connector names (every page), one per line')
    .option('--prefix <text>', 'only names starting with it')
    .option('--page-size <n>', 'names per request (the broker answers at most 1000)', intArg(1, 1000))
    .option('--json', 'print a JSON array')
    .action(async (flags: { prefix?: string; pageSize?: number; json?: boolean }, command: Command) => {
      const names = await withClient(command, (client) =>
        client.listConnectors({
          ...(flags.prefix !== undefined && { prefix: flags.prefix }),
          ...(flags.pageSize !== undefined && { pageSize: flags.pageSize }),
        }),
      );
      if (flags.json) await write(io.stdout, JSON.stringify(names, null, 2) + '\n');
      else await write(io.stdout, names.map((n) => `${n}\n`).join(''));
    });

  connectors
    .command('status [name]')
    .description("a connector's status as JSON; without a name, a table of every connector (state, tasks running, lag, isolation)")
    .option('--prefix <text>', 'without a name: only connectors whose name starts with it')
    .action(async (name: string | undefined, flags: { prefix?: string }, command: Command) => {
      if (name !== undefined) {
        const s = await withClient(command, (client) => client.connectorStatus(name));
        await write(io.stdout, JSON.stringify(s, null, 2) + '\n');
        return;
      }
      const rows = await withClient(command, async (client) => {
        const out: string[][] = [];
        for (const n of await client.listConnectors(flags.prefix === undefined ? {} : { prefix: flags.prefix })) {
          const s = await client.connectorStatus(n).catch(() => undefined);
          if (!s) continue; // deleted meanwhile
          const running = s.tasks.filter((t) => t.state === 'RUNNING').length;
          out.push([
            n,
            s.type,
            s.connector.state,
            `${running}/${s.tasks.length}`,
            s.lag === undefined ? '-' : String(s.lag),
            s.isolation ?? '-',
          ]);
        }
        return out;
      });
      await write(io.stdout, table([['NAME', 'TYPE', 'STATE', 'TASKS', 'LAG', 'ISOLATION'], ...rows]));
    });
}
