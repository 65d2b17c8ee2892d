/**
 * `node bench/dist/profile-cli.js <file.cpuprofile> [--window <function>] [--messages N] [--top N]`:
 * a saved profile's self time by place and by function; `--window produce` keeps only the samples from
 * the first to the last whose stack holds `produce` (the produce phase, not start-up); `--messages N`
 * adds µs per message.
 */
import { renderProfile, summarizeProfile } from './profile.js';

const args = process.argv.slice(2);
const file = args[0];
const opt = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i > 0 ? args[i + 1] : undefined;
};
if (!file || file.startsWith('--')) {
  process.stderr.write('usage: profile-cli.js <file.cpuprofile> [--window <function>] [--messages N] [--top N]\n');
  process.exit(2);
}
const top = Number(opt('--top') ?? 30);
const messages = Number(opt('--messages') ?? 0);
const s = summarizeProfile(file, top, opt('--window'));
process.stdout.write(`${renderProfile(s)}\n`);
if (messages > 0) {
  process.stdout.write(`\nµs per message (${messages}):\n`);
  for (const f of s.functions) process.stdout.write(`  ${((f.selfMs * 1000) / messages).toFixed(2).padStart(6)}  ${f.name}  ${f.where}\n`);
}
