import type { Command } from 'commander';
import { intArg } from '../args.js';
import { write, type CliIo } from '../io.js';
import { withClient } from './client.js';

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  ')).join('\n') + '\n';
}

/** `junction connectors list|status`: the connectors of a running broker (its `/v1/connectors`, page by page). */
export function connectorsCommand(program: Command, io: CliIo): void {
  const connectors = program.command('connectors').description('list connectors and show their status');

  connectors
    .command('list')
    .description('list connector names (every page), one per line')
    .option('--prefix <text>', 'only names starting with it')
    .option('--page-size <n>', 'names per request (the broker answers at most 1000)', intArg(1, 1000))
    .option('--json', 'print a JSON array')
    .action(async (flags: { prefix?: string; pageSize?: number; json?: boolean }, command: Command) => {
      const names = await withClient(command, (client) =>
        client.listConnectors({ ...(flags.prefix !== undefined && { prefix: flags.prefix }), ...(flags.pageSize !== undefined && { pageSize: flags.pageSize }) }),
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
          out.push([n, s.type, s.connector.state, `${running}/${s.tasks.length}`, s.lag === undefined ? '-' : String(s.lag), s.isolation ?? '-']);
        }
        return out;
      });
      await write(io.stdout, table([['NAME', 'TYPE', 'STATE', 'TASKS', 'LAG', 'ISOLATION'], ...rows]));
    });
}
