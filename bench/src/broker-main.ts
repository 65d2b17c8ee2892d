/**
 * Fallback broker process for trees where cli/ is not built: `node broker-main.js <dataDir> <port> <logLevel> [fsync]`.
 * Does what `junction start` does (startServer, close on SIGTERM / SIGINT) with the same defaults
 * (fsync always), so the numbers mean the same.
 */
import { startServer } from '@junction/server';

const [dataDir, port, logLevel, fsync] = process.argv.slice(2);
const server = await startServer({ dataDir, host: '127.0.0.1', port: Number(port), logLevel, fsync: fsync || undefined, env: {} });
const stop = () => {
  server.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
