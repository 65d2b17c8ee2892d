import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { CommanderError, type Command } from 'commander';
import type { PipelinePlan, PipelinePlanEntry } from '@junction/client';
import { CliError, CliErrorCode } from '../errors.js';
import { write, type CliIo } from '../io.js';
import { withClient } from './client.js';

const DEFAULT_FILE = 'junction.yaml';

/** Ends the command with exit code 1 after its own output (no `error CODE:` line: the output said it). */
function fail(): never {
  throw new CommanderError(1, 'junction.failed', '');
}

function fileOf(file: string | undefined, io: CliIo): string {
  const path = resolve(io.cwd, file ?? DEFAULT_FILE);
  if (file === undefined && !existsSync(path))
    throw new CliError(CliErrorCode.USAGE, `no ${DEFAULT_FILE} in ${io.cwd}: name the file to use`);
  return path;
}

const show = (v: unknown): string => (v === undefined ? '(unset)' : JSON.stringify(v));

const MARK: Record<PipelinePlanEntry['action'], string> = { create: '+', update: '~', delete: '-', unchanged: '=', conflict: '!' };

function entryText(e: PipelinePlanEntry, kind: 'station' | 'connector'): string {
  const what = kind === 'connector' && e.plugin !== undefined ? ` (${e.plugin} ${e.station ?? ''})` : '';
  let out = `  ${MARK[e.action]} ${e.action.padEnd(9)} ${e.name}${what}\n`;
  if (e.message !== undefined) out += `      ${e.message}\n`;
  for (const c of e.changes ?? []) {
    out += e.action === 'create' ? `      ${c.path}: ${show(c.to)}\n` : `      ${c.path}: ${show(c.from)} → ${show(c.to)}\n`;
  }
  if (e.error) out += `      error ${e.error.code}: ${e.error.message}\n`;
  return out;
}

/** The plan as text, Terraform-like: one line per station and connector, the fields that change under it. */
export function planText(plan: PipelinePlan): string {
  let out = 'stations:\n';
  out += plan.stations.length === 0 ? '  (none declared)\n' : plan.stations.map((e) => entryText(e, 'station')).join('');
  out += 'connectors:\n';
  out += plan.connectors.length === 0 ? '  (none declared)\n' : plan.connectors.map((e) => entryText(e, 'connector')).join('');
  const all = [...plan.stations, ...plan.connectors];
  const n = (a: string): number => all.filter((e) => e.action === a).length;
  const failed = all.filter((e) => e.error).length;
  out += `${n('create')} to create, ${n('update')} to update, ${n('delete')} to delete, ${n('unchanged')} unchanged`;
  out += `${n('conflict') > 0 ? `, ${n('conflict')} in conflict` : ''}${failed > 0 ? `, ${failed} failed` : ''}\n`;
  return out;
}

/** `junction validate [file]` and `junction apply [file] [--plan] [--prune]`: pipelines as code. */
export function pipelineCommands(program: Command, io: CliIo): void {
  program
    .command('validate [file]')
    .description(
      'check a junction.yaml offline (no broker): YAML, schema, stations, connectors against their plugins, secrets, references; every issue with its path and line; exit 1 on issues',
    )
    .option('--json', 'print the report as JSON')
    .option('--online', 'a connector station not declared in the file may exist on the broker at --url instead')
    .action(async (file: string | undefined, flags: { json?: boolean; online?: boolean }, command: Command) => {
      const path = fileOf(file, io);
      const { validateConfigFile } = await import('@junction/server');
      const check = async (stationExists?: (name: string) => Promise<boolean>) =>
        validateConfigFile(path, { env: io.env, cwd: io.cwd, stationExists });
      const report = flags.online
        ? await withClient(
            command,
            (client) =>
              check((name) =>
                client.getStation(name).then(
                  () => true,
                  () => false,
                ),
              ),
            io.env,
          )
        : await check();
      if (flags.json) {
        await write(io.stdout, JSON.stringify(report, null, 2) + '\n');
      } else if (report.valid) {
        await write(io.stdout, `${file ?? DEFAULT_FILE} is valid: ${report.stations} stations, ${report.connectors} connectors\n`);
      } else {
        let out = '';
        for (const i of report.issues)
          out += `${i.path || '(file)'}: ${i.message}${i.line !== undefined ? `  (${file ?? DEFAULT_FILE}:${i.line}:${i.column ?? 1})` : ''}\n`;
        out += `${file ?? DEFAULT_FILE}: ${report.issues.length} issue${report.issues.length === 1 ? '' : 's'}\n`;
        await write(io.stdout, out);
      }
      if (!report.valid) fail();
    });

  program
    .command('apply [file]')
    .description(
      'make a running broker match the stations and connectors of a junction.yaml (--plan: only show what would change). ' +
        'Nothing the file does not name is deleted unless --prune is given',
    )
    .option('--plan', 'show what applying would create, update and delete (field diffs, secrets masked) without changing anything')
    .option(
      '--prune',
      'also delete the stations and connectors the file does not name (never Junction’s own nor dead-letter stations, nor a station a declared connector uses)',
    )
    .option('--json', 'print the plan (or what was applied) as JSON')
    .action(async (file: string | undefined, flags: { plan?: boolean; prune?: boolean; json?: boolean }, command: Command) => {
      const path = fileOf(file, io);
      const { parseConfigText } = await import('@junction/server');
      const { readFile } = await import('node:fs/promises');
      const text = await readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => {
        throw new CliError(CliErrorCode.INPUT_ERROR, `cannot read ${path} (${err.code ?? err.message})`);
      });
      // Checked here first (CONFIG_INVALID with every path), then by the broker against its plugins.
      const parsed = parseConfigText(text, path);
      const spec = { stations: parsed.stations ?? [], connectors: parsed.connectors ?? [], prune: flags.prune === true };
      const plan = await withClient(command, (client) => (flags.plan ? client.planPipeline(spec) : client.applyPipeline(spec)), io.env);
      const { url } = command.optsWithGlobals<{ url: string }>();
      if (flags.json) {
        await write(io.stdout, JSON.stringify({ file: path, url, prune: spec.prune, applied: !flags.plan, ...plan }, null, 2) + '\n');
      } else {
        const head = flags.plan ? `Plan for ${file ?? DEFAULT_FILE} against ${url}` : `Applied ${file ?? DEFAULT_FILE} to ${url}`;
        const prune = spec.prune ? 'prune: on (what the file does not name is deleted)' : 'prune: off (nothing is deleted)';
        await write(io.stdout, `${head} — ${prune}\n${planText(plan)}`);
      }
      const bad = [...plan.stations, ...plan.connectors].some((e) => e.action === 'conflict' || e.error !== undefined);
      if (bad) fail();
    });
}
