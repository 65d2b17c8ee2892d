import { Option, type Command } from 'commander';
import type { StationConfigInput } from '@junction/protocol';
import type { StationInfo } from '@junction/client';
import { intArg } from '../args.js';
import { write, type CliIo } from '../io.js';
import { withClient } from './client.js';

interface CreateFlags {
  partitions?: number;
  storage?: 'file' | 'memory';
  retentionMaxAgeMs?: number;
  retentionMaxMessages?: number;
  retentionMaxBytes?: number;
  retentionAckBased?: boolean;
  dedupWindowMs?: number;
  dedupMaxIds?: number;
  maxMessageBytes?: number;
  segmentBytes?: number;
  fsync?: string;
  deadLetter: boolean;
  maxDeliveries?: number;
  maxAckTimeMs?: number;
  replicas?: number;
  json?: boolean;
}

/** The station options the flags give; unset flags are left to the broker's defaults. */
export function configFromFlags(f: CreateFlags): StationConfigInput & { replicas?: number } {
  const config: StationConfigInput & { replicas?: number } = {};
  if (f.replicas !== undefined) config.replicas = f.replicas;
  if (f.partitions !== undefined) config.partitions = f.partitions;
  if (f.storage !== undefined) config.storage = f.storage;
  const retention: NonNullable<StationConfigInput['retention']> = {};
  if (f.retentionMaxAgeMs !== undefined) retention.maxAgeMs = f.retentionMaxAgeMs;
  if (f.retentionMaxMessages !== undefined) retention.maxMessages = f.retentionMaxMessages;
  if (f.retentionMaxBytes !== undefined) retention.maxBytes = f.retentionMaxBytes;
  if (f.retentionAckBased) retention.ackBased = true;
  // Any retention flag replaces the default retention (7 days by age) as a whole.
  if (Object.keys(retention).length > 0) config.retention = retention;
  if (f.dedupWindowMs !== undefined) config.dedupWindowMs = f.dedupWindowMs;
  if (f.dedupMaxIds !== undefined) config.dedupMaxIds = f.dedupMaxIds;
  if (f.maxMessageBytes !== undefined) config.maxMessageBytes = f.maxMessageBytes;
  if (f.segmentBytes !== undefined) config.segmentBytes = f.segmentBytes;
  if (f.fsync !== undefined) config.fsync = f.fsync;
  if (!f.deadLetter || f.maxDeliveries !== undefined || f.maxAckTimeMs !== undefined) {
    const deadLetter: NonNullable<StationConfigInput['deadLetter']> = { enabled: f.deadLetter };
    if (f.maxDeliveries !== undefined) deadLetter.maxDeliveries = f.maxDeliveries;
    if (f.maxAckTimeMs !== undefined) deadLetter.maxAckTimeMs = f.maxAckTimeMs;
    config.deadLetter = deadLetter;
  }
  return config;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  ')).join('\n') + '\n';
}

function summary(s: StationInfo): string[] {
  return [s.name, String(s.config.partitions), s.config.storage, String(s.messages), String(s.bytes), s.groups.join(',') || '-'];
}

/** `junction stations create|list|get|delete`. */
export function stationsCommand(program: Command, io: CliIo): void {
  const stations = program.command('stations').description('create, list, show and delete stations');

  stations
    .command('create <name>')
    .description('create a station (options not given take the broker defaults)')
    .option('--partitions <n>', 'number of partitions, fixed after creation (default 1)', intArg(1, 1024))
    .addOption(new Option('--storage <kind>', 'file or memory, fixed after creation (default file)').choices(['file', 'memory']))
    .option('--retention-max-age-ms <ms>', 'drop messages older than this (default 604800000, 7 days)', intArg(1))
    .option('--retention-max-messages <n>', 'keep at most this many messages per partition', intArg(1))
    .option('--retention-max-bytes <n>', 'keep at most this many bytes per partition', intArg(1))
    .option('--retention-ack-based', 'drop what every consumer group acknowledged')
    .option('--dedup-window-ms <ms>', 'msgId deduplication window (default 120000)', intArg(0))
    .option(
      '--dedup-max-ids <n>',
      'most msgIds the window remembers; the oldest leave early past it (default 4000000)',
      intArg(1000, 100_000_000),
    )
    .option('--max-message-bytes <n>', 'largest message (default 8388608)', intArg(1))
    .option('--segment-bytes <n>', 'segment file size (default 67108864)', intArg(4096))
    .option('--fsync <policy>', 'always | never | interval:<ms> (default: the broker’s policy)')
    .option('--no-dead-letter', 'drop messages past max deliveries instead of dead-lettering them')
    .option('--max-deliveries <n>', 'deliveries before a message is dead-lettered (default 5)', intArg(1, 1000))
    .option('--max-ack-time-ms <ms>', 'ack deadline of a delivery (default 30000)', intArg(100))
    .option('--replicas <n>', 'copies on the NATS servers (cluster mode only; default min(3, servers))', intArg(1, 5))
    .option('--json', 'print the station as JSON')
    .action(async (name: string, flags: CreateFlags, command: Command) => {
      const info = await withClient(command, (client) => client.createStation(name, configFromFlags(flags)));
      if (flags.json) await write(io.stdout, JSON.stringify(info, null, 2) + '\n');
      else await write(io.stdout, `created station ${info.name} (${info.config.partitions} partitions, ${info.config.storage})\n`);
    });

  stations
    .command('list')
    .description('list stations')
    .option('--json', 'print JSON')
    .action(async (flags: { json?: boolean }, command: Command) => {
      const list = await withClient(command, (client) => client.listStations());
      if (flags.json) {
        await write(io.stdout, JSON.stringify(list, null, 2) + '\n');
        return;
      }
      const rows = [['NAME', 'PARTITIONS', 'STORAGE', 'MESSAGES', 'BYTES', 'GROUPS'], ...list.map(summary)];
      await write(io.stdout, table(rows));
    });

  stations
    .command('get <name>')
    .description('show a station as JSON (config, partitions, groups)')
    .action(async (name: string, _flags: object, command: Command) => {
      const info = await withClient(command, (client) => client.getStation(name));
      await write(io.stdout, JSON.stringify(info, null, 2) + '\n');
    });

  stations
    .command('delete <name>')
    .description('delete a station with its groups and its dead-letter station')
    .action(async (name: string, _flags: object, command: Command) => {
      await withClient(command, (client) => client.deleteStation(name));
      await write(io.stdout, `deleted station ${name}\n`);
    });
}
