import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { isAbsolute, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import type { PluginDescriptor, RefusedPlugin } from '@junction/registry';
import { isJunctionApiError } from '@junction/client';
import { CliError } from '../errors.js';
import { write, type CliIo } from '../io.js';
import { CLIENT_PACKAGES, packPackage, packageVersion, SDK_PACKAGE } from '../pack.js';
import { checkScaffoldInput, scaffoldFiles, ScaffoldErrorCode } from '../scaffold.js';
import { withClient } from './client.js';

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

/** No broker answered at --url (as opposed to a broker that refused). */
function unreachable(err: unknown): boolean {
  return isJunctionApiError(err) && err.code === 'NETWORK_ERROR';
}

/** A spec that names a folder or tarball here becomes an absolute path, so the broker finds it; an npm spec stays as it is. */
function absoluteSpec(spec: string, cwd: string): string {
  const local = isAbsolute(spec) ? spec : resolve(cwd, spec);
  return existsSync(local) ? local : spec;
}

/**
 * `junction plugins install|uninstall|refresh|list|sdk|new`. install, uninstall and refresh talk to the
 * running broker at --url (its plugins dir; usable at once); with --data-dir / --config / --offline, or
 * when no broker answers, install works on the data dir's plugins folder directly.
 */
export function pluginsCommand(program: Command, io: CliIo): void {
  const plugins = program
    .command('plugins')
    .description('install, remove and list connector plugins; get the SDK; scaffold a plugin project');

  plugins
    .command('install <spec>')
    .description(
      'install a connector plugin into the running broker (usable at once): a package folder, a tarball (npm pack) or an npm package spec',
    )
    .option('--data-dir <dir>', 'install offline into <dir>/plugins instead of through the broker (env JUNCTION_DATA_DIR; default ./data)')
    .option('--config <file>', 'install offline, reading the data dir from this configuration file')
    .option('--offline', 'install into the data dir’s plugins folder without asking the broker')
    .option('--json', 'print the installed plugin as JSON')
    .action(async (spec: string, flags: DirFlags & { json?: boolean; offline?: boolean }, command: Command) => {
      if (!flags.offline && flags.dataDir === undefined && flags.config === undefined) {
        try {
          const d = await withClient(command, (c) => c.installPlugin(absoluteSpec(spec, io.cwd)), io.env);
          const { url } = command.optsWithGlobals<{ url: string }>();
          await write(
            io.stdout,
            flags.json
              ? JSON.stringify(d, null, 2) + '\n'
              : `installed ${d.kind} plugin ${d.name} ${d.version} into the broker at ${url}; usable now\n`,
          );
          return;
        } catch (err) {
          if (!unreachable(err)) throw err;
          // No broker running: install where it will find the plugin when it starts.
        }
      }
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
          `a broker running on this data dir lists it after \`junction plugins refresh\` (or a restart)\n`,
      );
    });

  plugins
    .command('uninstall <name>')
    .description('remove an installed plugin from the running broker (refused while a connector uses it)')
    .action(async (name: string, _flags: unknown, command: Command) => {
      await withClient(command, (c) => c.uninstallPlugin(name), io.env);
      await write(io.stdout, `uninstalled ${name}\n`);
    });

  plugins
    .command('refresh')
    .description('make the running broker scan its plugins folder again (after an offline install)')
    .option('--json', 'print JSON: { plugins, refused }')
    .action(async (flags: { json?: boolean }, command: Command) => {
      const r = await withClient(command, (c) => c.refreshPlugins(), io.env);
      if (flags.json) {
        await write(io.stdout, JSON.stringify(r, null, 2) + '\n');
        return;
      }
      let out = `${r.plugins.length} plugin(s): ${r.plugins.map((p) => p.name).join(', ')}\n`;
      if (r.refused.length > 0) out += `refused (${r.refused.length}):\n` + r.refused.map((x) => refusedText(x)).join('');
      await write(io.stdout, out);
    });

  plugins
    .command('sdk')
    .description('write the connector SDK tarball (npm install it in a plugin project), or with --client the client tarballs')
    .option('--out <dir>', 'where to write the tarball(s) (default: the current folder)')
    .option('--client', 'write the client (@junction/client) and the wire contract it needs (@junction/protocol) instead')
    .action(async (flags: { out?: string; client?: boolean }) => {
      const out = resolve(io.cwd, flags.out ?? '.');
      const names = flags.client ? [...CLIENT_PACKAGES] : [SDK_PACKAGE];
      const packed = [];
      for (const name of names) packed.push(await packPackage(name, out, io.env));
      await write(io.stdout, packed.map((p) => `${p.path}\n`).join(''));
    });

  plugins
    .command('new <name>')
    .description('scaffold a plugin project (config schema, plugin, conformance test, README) that builds outside the Junction repository')
    .option('--kind <kind>', 'sink | source | transform', 'sink')
    .option('--dir <dir>', 'the project folder (default ./junction-connector-<name>); must be empty or missing')
    .action(async (name: string, flags: { kind: string; dir?: string }) => {
      const kind = checkScaffoldInput(name, flags.kind);
      const dir = resolve(io.cwd, flags.dir ?? `junction-connector-${name}`);
      let present: string[] = [];
      try {
        present = await readdir(dir);
      } catch {
        // missing: made below
      }
      if (present.length > 0)
        throw new CliError(ScaffoldErrorCode.DIR_NOT_EMPTY, `${dir} is not empty; scaffold into a new folder (--dir)`);
      const { mkdir, writeFile } = await import('node:fs/promises');
      const sdk = await packPackage(SDK_PACKAGE, join(dir, 'vendor'), io.env);
      const files = scaffoldFiles({
        name,
        kind,
        sdkTarball: sdk.path.slice(join(dir, 'vendor').length + 1),
        sdkVersion: await packageVersion(SDK_PACKAGE),
      });
      for (const [rel, text] of Object.entries(files)) {
        const path = join(dir, rel);
        await mkdir(join(path, '..'), { recursive: true });
        await writeFile(path, text);
      }
      await write(
        io.stdout,
        `scaffolded ${kind} plugin ${name} in ${dir}\n` +
          `next: cd ${dir} && npm install && npm test, then \`junction plugins install ${dir}\`\n`,
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
