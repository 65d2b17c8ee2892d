import { existsSync } from 'node:fs';
import { join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import type { PluginDescriptor, RefusedPlugin } from '@junction/registry';
import { write, type CliIo } from '../io.js';

interface DirFlags {
  dataDir?: string;
  config?: string;
}

/** The folder of the built-in connectors, beside the CLI in the repository (`<repo>/connectors`). */
export const BUILTIN_CONNECTORS_DIR = fileURLToPath(new URL('../../../connectors/', import.meta.url));

const QUIET = { warn: () => {}, debug: () => {} };

/**
 * Where plugins live: `<data-dir>/plugins`, the data dir found as `junction start` finds it
 * (--data-dir, JUNCTION_DATA_DIR, the config file's `server.dataDir`, then ./data).
 */
async function locate(flags: DirFlags, io: CliIo): Promise<{ pluginsDir: string; builtinDirs: string[] }> {
  // Loaded here, so the client commands do not pay for loading the server.
  const { loadConfig, DEFAULT_CONFIG_FILE } = await import('@junction/server');
  const fallback = join(io.cwd, DEFAULT_CONFIG_FILE);
  const configPath = flags.config ?? (existsSync(fallback) ? fallback : undefined);
  const config = await loadConfig(configPath, { dataDir: flags.dataDir }, { env: io.env, cwd: io.cwd });
  return { pluginsDir: join(config.server.dataDir, 'plugins'), builtinDirs: [BUILTIN_CONNECTORS_DIR] };
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  ')).join('\n') + '\n';
}

function row(d: PluginDescriptor): string[] {
  return [d.name, d.kind, d.version, d.sdk, d.builtin ? 'built-in' : d.packageName, d.description ?? ''];
}

function refusedText(r: RefusedPlugin): string {
  let out = `  ${r.packageName ?? r.path}: ${r.code}: ${r.message}\n`;
  if (r.packageName !== undefined) out += `    at ${r.path}\n`;
  for (const issue of r.issues ?? []) out += `    ${issue.path || '(root)'}: ${issue.message}\n`;
  return out;
}

/**
 * `junction plugins install|list`. Offline: they work on the data dir's plugins folder directly, not
 * through a running broker (which picks up a new plugin when it restarts).
 */
export function pluginsCommand(program: Command, io: CliIo): void {
  const plugins = program
    .command('plugins')
    .description('install and list connector plugins (in <data-dir>/plugins; no running broker needed)');

  plugins
    .command('install <spec>')
    .description('install a connector plugin: a package folder, a tarball (npm pack) or an npm package spec')
    .option('--data-dir <dir>', 'the broker’s data dir; plugins go to <dir>/plugins (env JUNCTION_DATA_DIR; default ./data)')
    .option('--config <file>', 'configuration file to read the data dir from (default ./junction.yaml when it exists)')
    .option('--json', 'print the installed plugin as JSON')
    .action(async (spec: string, flags: DirFlags & { json?: boolean }) => {
      const { installPlugin } = await import('@junction/registry');
      const { pluginsDir, builtinDirs } = await locate(flags, io);
      const d = await installPlugin(spec, pluginsDir, { builtinDirs, cwd: io.cwd, env: io.env });
      if (flags.json) {
        await write(io.stdout, JSON.stringify(d, null, 2) + '\n');
        return;
      }
      await write(
        io.stdout,
        `installed ${d.kind} plugin ${d.name} ${d.version} (package ${d.packageName}) into ${pluginsDir}\n` +
          `a running broker lists it after a restart\n`,
      );
    });

  plugins
    .command('list')
    .description('list the installed plugins, and the ones refused with why')
    .option('--data-dir <dir>', 'the broker’s data dir (env JUNCTION_DATA_DIR; default ./data)')
    .option('--config <file>', 'configuration file to read the data dir from (default ./junction.yaml when it exists)')
    .option('--all', 'include the built-in connectors')
    .option('--json', 'print JSON: { plugins, refused }')
    .action(async (flags: DirFlags & { all?: boolean; json?: boolean }) => {
      const { Registry } = await import('@junction/registry');
      const { pluginsDir, builtinDirs } = await locate(flags, io);
      // Built-ins are always scanned, so a plugin that takes a built-in's name shows as refused.
      const registry = await Registry.open({ builtinDirs, pluginsDir, logger: QUIET });
      const inPlugins = (path: string): boolean => path === pluginsDir || path.startsWith(`${pluginsDir}${sep}`);
      const listed = registry.list().filter((d) => flags.all || !d.builtin);
      const refused = registry.refused().filter((r) => flags.all || inPlugins(r.path));
      if (flags.json) {
        await write(io.stdout, JSON.stringify({ plugins: listed, refused }, null, 2) + '\n');
        return;
      }
      let out = '';
      if (listed.length === 0) out += `no plugins in ${pluginsDir}${flags.all ? '' : ' (--all lists the built-in connectors too)'}\n`;
      else out += table([['NAME', 'KIND', 'VERSION', 'SDK', 'PACKAGE', 'DESCRIPTION'], ...listed.map(row)]);
      if (refused.length > 0) {
        out += `\nrefused (${refused.length}):\n`;
        for (const r of refused) out += refusedText(r);
      }
      await write(io.stdout, out);
    });
}
