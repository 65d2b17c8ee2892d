/** Starting `echo-server.js` in a process of its own (the latency row's references; its test). */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * Spawns `echo-server.js` (with `--durable <dir>` when `durableDir` is given) and resolves once it printed
 * its port. The caller stops it (`child.kill('SIGTERM')`).
 */
export async function startEchoServer(durableDir?: string): Promise<{ child: ChildProcess; port: number }> {
  const args = [
    fileURLToPath(new URL('./echo-server.js', import.meta.url)),
    ...(durableDir === undefined ? [] : ['--durable', durableDir]),
  ];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      let out = '';
      child.stdout?.on('data', (c: Buffer) => {
        out += c.toString('utf8');
        const nl = out.indexOf('\n');
        if (nl >= 0) resolve((JSON.parse(out.slice(0, nl)) as { port: number }).port);
      });
      child.once('exit', (code) => reject(new Error(`echo server exited (${code}) before listening`)));
      child.once('error', reject);
    });
    return { child, port };
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
}
