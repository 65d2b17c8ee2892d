/**
 * Running commands as a user outside the repository does: the built CLI, npm in a temp folder, an
 * environment without the npm variables of the workspace run that started the tests.
 */
import { spawn } from 'node:child_process';
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { repoRoot } from './index.js';

export interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** process.env without what npm sets for the scripts it runs (they would point npm at the workspace). */
export function outsideEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    const lower = k.toLowerCase();
    if (
      lower.startsWith('npm_') ||
      lower === 'init_cwd' ||
      lower === 'node_options' ||
      lower.startsWith('vitest') ||
      lower === 'force_color'
    )
      continue;
    env[k] = v;
  }
  return { ...env, NO_COLOR: '1', npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false', ...extra };
}

/** Runs a command to its end; never rejects for a non-zero exit (the caller checks `code`). */
export function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = outsideEnv()): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** `junction <args>` with the built CLI, as a user runs it. */
export function junction(args: string[], cwd: string, env?: NodeJS.ProcessEnv): Promise<Ran> {
  return run(process.execPath, [join(repoRoot, 'cli', 'dist', 'bin.js'), ...args], cwd, env);
}

/** Every symbolic link under `dir` (node_modules included) whose target is not inside `dir`. */
export async function linksOutside(dir: string): Promise<string[]> {
  const { realpath } = await import('node:fs/promises');
  const out: string[] = [];
  const root = await realpath(dir);
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    const path = join(e.parentPath, e.name);
    if (!(await lstat(path)).isSymbolicLink()) continue;
    const target = await realpath(path).catch(() => path);
    if (!target.startsWith(root)) out.push(`${path} -> ${target}`);
  }
  return out;
}
