/**
 * The references of the single-produce latency row: a bare node:http server (no framework, no store) in a
 * process of its own, as the broker is. It reads the whole request body and answers a produce answer of
 * the same shape as the broker's (`{"results":[{"partition":0,"offset":n}]}`). Prints `{"port": n}` on
 * stdout once listening on 127.0.0.1 (an ephemeral port); stops on SIGTERM.
 *
 * `echo-server.js` alone: the echo (no disk). `echo-server.js --durable <dir>`: the least a durable
 * acknowledgement costs — the body appended to a file in `<dir>` and `fdatasync`ed before the answer, both
 * through libuv's pool (`FileHandle.write`, `FileHandle.datasync`) as the broker's fsync-always path does;
 * no framing, no index, no checksum, no validation.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { createServer } from 'node:http';
import { join } from 'node:path';

const at = process.argv.indexOf('--durable');
const dir = at >= 0 ? process.argv[at + 1] : undefined;
const file: FileHandle | undefined = dir === undefined ? undefined : await open(join(dir, 'durable-echo.log'), 'w');

let offset = 0;
let position = 0;
const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const answer = (): void => {
      const body = JSON.stringify({ results: [{ partition: 0, offset: ++offset }] });
      res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    };
    if (file === undefined) return answer();
    const data = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
    // Each body at the position it was given on arrival (the file is not opened for append: positions hold).
    const from = position;
    position += data.length;
    file
      .write(data, 0, data.length, from)
      .then(() => file.datasync())
      .then(answer, (err: unknown) => {
        res.writeHead(500).end(String(err));
      });
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  const addr = server.address();
  process.stdout.write(`${JSON.stringify({ port: typeof addr === 'object' && addr ? addr.port : 0 })}\n`);
});
process.on('SIGTERM', () => server.close(() => void file?.close().finally(() => process.exit(0))));
