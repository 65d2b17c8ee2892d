/**
 * The process's open-file limit at start. Node has no setrlimit, and on Linux Node itself raises the
 * soft RLIMIT_NOFILE to the hard limit while it starts (node.cc PlatformInit), so this is usually a
 * check. Where the soft limit is still below the hard one (another runtime, an embedder), it runs
 * `prlimit --pid <self> --nofile=<hard>:<hard>` (util-linux) once — best effort: without prlimit, or
 * when it fails, the soft limit stays and the open-file budget follows it. Reads the limits from
 * /proc/self/limits; where that file does not exist (not Linux) it does nothing.
 */
import { execFileSync } from 'node:child_process';
import { readNofileLimits } from '@junction/broker';

/** What raiseNofileLimit found and did. */
export interface NofileOutcome {
  soft: number;
  hard: number;
  /** The soft limit before (when it was raised or a raise was tried). */
  before?: number | undefined;
  /** Why the soft limit could not be raised, when it could not. */
  failed?: string | undefined;
}

/** Raises the soft RLIMIT_NOFILE to the hard one where it is lower (see the file comment). Undefined where the limits cannot be read. */
export function raiseNofileLimit(): NofileOutcome | undefined {
  const l = readNofileLimits();
  if (!l) return undefined;
  if (l.soft >= l.hard) return { soft: l.soft, hard: l.hard };
  const hard = l.hard >= Number.MAX_SAFE_INTEGER ? 'unlimited' : String(l.hard);
  try {
    execFileSync('prlimit', ['--pid', String(process.pid), `--nofile=${hard}:${hard}`], { stdio: 'ignore', timeout: 5000 });
  } catch (err) {
    return { soft: l.soft, hard: l.hard, before: l.soft, failed: `prlimit failed: ${err instanceof Error ? err.message : String(err)}` };
  }
  const after = readNofileLimits() ?? l;
  return {
    soft: after.soft,
    hard: after.hard,
    before: l.soft,
    ...(after.soft < after.hard && { failed: 'prlimit ran but the soft limit did not change' }),
  };
}
