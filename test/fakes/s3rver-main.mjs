// Runs s3rver (a local S3 server) in its own process, so a test can stop it (SIGKILL) and start it
// again on the same port and directory. Prints one JSON line `{"port":N}` once it listens.
// Usage: node --openssl-legacy-provider s3rver-main.mjs <directory> [port]
// (--openssl-legacy-provider: s3rver's ListObjectsV2 continuation tokens use a cipher that OpenSSL 3
// only has in its legacy provider; without it, paged listings answer 500.)
import S3rver from 's3rver';

const [directory, port = '0'] = process.argv.slice(2);
if (!directory) {
  console.error('usage: s3rver-main.mjs <directory> [port]');
  process.exit(2);
}
const server = new S3rver({ address: '127.0.0.1', port: Number(port), directory, silent: true });
const info = await server.run();
process.stdout.write(`${JSON.stringify({ port: info.port })}\n`);
process.on('SIGTERM', () => {
  server.close().finally(() => process.exit(0));
});
