import { Option, type Command } from 'commander';
import { intArg } from '../args.js';
import { write, type CliIo } from '../io.js';
import { withClient } from './client.js';

interface ConsumeFlags {
  group: string;
  max?: number;
  from?: 'earliest' | 'latest';
  ack: boolean;
  waitMs: number;
  idleExitMs?: number;
}

/**
 * `junction consume`: prints each message's value on its own line (the bytes as stored, then `\n`) and
 * acknowledges each batch after it was written (at least once: a crash between the two prints a
 * message again). Stops after --max messages, after --idle-exit-ms without a message, or on SIGINT /
 * SIGTERM (then exits 0).
 */
export function consumeCommand(program: Command, io: CliIo): void {
  program
    .command('consume <station>')
    .description('print messages of a station for a consumer group, one value per line, and ack them')
    .requiredOption('--group <name>', 'consumer group')
    .option('--max <n>', 'stop after this many messages', intArg(1))
    .addOption(
      new Option('--from <position>', 'where a NEW group starts (an existing group keeps its place; default earliest)').choices([
        'earliest',
        'latest',
      ]),
    )
    .option('--no-ack', 'do not acknowledge: the messages come back after the ack deadline')
    .option('--wait-ms <ms>', 'long-poll wait of each fetch', intArg(0, 300_000), 5000)
    .option('--idle-exit-ms <ms>', 'stop when no message came for this long', intArg(0))
    .action(async (station: string, flags: ConsumeFlags, command: Command) => {
      const stop = new AbortController();
      const onSignal = (): void => stop.abort();
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      try {
        await withClient(command, async (client) => {
          if (flags.from !== undefined) {
            try {
              await client.createGroup(station, flags.group, { start: { type: flags.from } });
            } catch (err) {
              if ((err as { code?: unknown }).code !== 'GROUP_EXISTS') throw err;
            }
          }
          let received = 0;
          let lastMessageAt = Date.now();
          while (!stop.signal.aborted && (flags.max === undefined || received < flags.max)) {
            const want = Math.min(1000, flags.max === undefined ? 1000 : flags.max - received);
            let waitMs = flags.waitMs;
            if (flags.idleExitMs !== undefined) {
              const left = flags.idleExitMs - (Date.now() - lastMessageAt);
              if (left <= 0) break;
              waitMs = Math.min(waitMs, left);
            }
            let deliveries;
            try {
              deliveries = await client.fetch(station, flags.group, { maxMessages: want, waitMs }, { signal: stop.signal });
            } catch (err) {
              if (stop.signal.aborted) break;
              throw err;
            }
            if (deliveries.length === 0) continue;
            lastMessageAt = Date.now();
            for (const d of deliveries) {
              await write(io.stdout, d.value);
              await write(io.stdout, '\n');
            }
            received += deliveries.length;
            // Acked only after written: never acknowledged without being printed.
            if (flags.ack)
              await client.ack(
                station,
                flags.group,
                deliveries.map((d) => d.deliveryId),
              );
          }
        });
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
    });
}
