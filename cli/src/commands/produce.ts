import { createReadStream } from 'node:fs';
import type { Command } from 'commander';
import type { ProducerMessage } from '@junction/client';
import { headerArg, intArg } from '../args.js';
import { CliError, CliErrorCode, formatError } from '../errors.js';
import { write, type CliIo } from '../io.js';
import { withClient } from './client.js';

interface ProduceFlags {
  file?: string;
  key?: string;
  header?: Record<string, string>;
  batchSize: number;
}

/** Errors printed one by one before the rest are only counted. */
const MAX_PRINTED_ERRORS = 20;

/**
 * Splits a byte stream into lines: `\n` ends a line, a `\r` before it is dropped, a final `\n` does not
 * make an empty line, an empty line in the middle is an empty message. The same rule as the broker's
 * NDJSON produce, so what `consume` prints back compares equal byte for byte.
 */
export async function* lines(input: AsyncIterable<Buffer | string>): AsyncGenerator<Buffer> {
  let rest: Buffer = Buffer.alloc(0);
  for await (const chunk of input) {
    let buf: Buffer = rest.length > 0 ? Buffer.concat([rest, Buffer.from(chunk)]) : Buffer.from(chunk);
    let nl: number;
    while ((nl = buf.indexOf(0x0a)) !== -1) {
      const end = nl > 0 && buf[nl - 1] === 0x0d ? nl - 1 : nl;
      yield Buffer.from(buf.subarray(0, end));
      buf = buf.subarray(nl + 1);
    }
    rest = buf;
  }
  if (rest.length > 0) yield rest;
}

/** `junction produce`: one message per line of stdin or --file, sent in batches, with a summary. */
export function produceCommand(program: Command, io: CliIo): void {
  program
    .command('produce <station>')
    .description('produce one message per line of stdin (or --file); exits 1 if any message was not stored')
    .option('--file <path>', 'read the lines from this file instead of stdin')
    .option('--key <key>', 'key of every message (same key, same partition)')
    .option('--header <name=value>', 'a header on every message (repeatable)', headerArg)
    .option('--batch-size <n>', 'messages per request', intArg(1, 100_000), 1000)
    .action(async (station: string, flags: ProduceFlags, command: Command) => {
      const input = flags.file !== undefined ? createReadStream(flags.file) : io.stdin;
      let stored = 0;
      let duplicates = 0;
      let failed = 0;
      let printed = 0;
      let lineNo = 0;
      // Boxed: what a request threw may be any value, even undefined.
      let requestError: { err: unknown } | undefined;

      await withClient(command, async (client) => {
        let batch: ProducerMessage[] = [];
        let firstLine = 1;
        const send = async (): Promise<void> => {
          const results = await client.produce(station, batch);
          results.forEach((r, i) => {
            if (r.status === 'stored') stored++;
            else if (r.status === 'duplicate') duplicates++;
            else {
              failed++;
              if (printed++ < MAX_PRINTED_ERRORS) io.stderr.write(`line ${firstLine + i}: ${formatError(r)}`);
            }
          });
          firstLine += batch.length;
          batch = [];
        };
        const source = lines(input as AsyncIterable<Buffer | string>);
        for (;;) {
          let next: IteratorResult<Buffer>;
          try {
            next = await source.next();
          } catch (err) {
            throw new CliError(CliErrorCode.INPUT_ERROR, `cannot read ${flags.file ?? 'stdin'}: ${(err as Error).message}`, { cause: err });
          }
          if (next.done) break;
          lineNo++;
          const m: ProducerMessage = { value: next.value };
          if (flags.key !== undefined) m.key = flags.key;
          if (flags.header !== undefined) m.headers = flags.header;
          batch.push(m);
          if (batch.length < flags.batchSize) continue;
          try {
            await send();
          } catch (err) {
            // The batch failed as a whole: which of its messages were stored is unknown. Stop here.
            requestError = { err };
            await source.return(undefined);
            break;
          }
        }
        if (requestError === undefined && batch.length > 0) {
          try {
            await send();
          } catch (err) {
            requestError = { err };
          }
        }
      });

      const unsent = lineNo - stored - duplicates - failed;
      await write(
        io.stdout,
        `produced ${stored + duplicates} of ${lineNo} messages to ${station}: ${stored} stored, ${duplicates} duplicates, ${failed} rejected` +
          (unsent > 0 ? `, ${unsent} not acknowledged` : '') +
          '\n',
      );
      if (requestError !== undefined) throw requestError.err;
      if (failed > 0) throw new CliError(CliErrorCode.PRODUCE_FAILED, `${failed} of ${lineNo} messages were rejected`);
    });
}
