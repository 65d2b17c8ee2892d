/**
 * The reference of the single-produce latency row: a bare node:http server (no framework, no store, no
 * fsync) in a process of its own, as the broker is. It reads the whole request body and answers a produce
 * answer of the same shape as the broker's (`{"results":[{"partition":0,"offset":n}]}`). Prints
 * `{"port": n}` on stdout once listening on 127.0.0.1 (an ephemeral port); stops on SIGTERM.
 */
import { createServer } from 'node:http';

let offset = 0;
const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const body = JSON.stringify({ results: [{ partition: 0, offset: ++offset }] });
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  const addr = server.address();
  process.stdout.write(`${JSON.stringify({ port: typeof addr === 'object' && addr ? addr.port : 0 })}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
