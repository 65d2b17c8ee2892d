import { Option, type Command } from 'commander';
import type { JunctionClient, TokenGrant } from '@junction/client';
import { intArg } from '../args.js';
import { CliError, CliErrorCode } from '../errors.js';
import { write, type CliIo } from '../io.js';
import { withClient } from './client.js';
import { credentialsPath, saveCredentials } from './credentials.js';

const RESOURCES = ['station', 'group', 'connector', 'schema', 'cluster'];
const ACTIONS = ['produce', 'consume', 'manage', 'read'];

/** `station:orders-*:produce,consume` (or `deny:station:secret:read`) → a grant. */
export function parseGrant(text: string): TokenGrant {
  const parts = text.split(':');
  const effect = parts[0] === 'deny' || parts[0] === 'allow' ? (parts.shift() as 'allow' | 'deny') : 'allow';
  const [resource, pattern, actions] = parts;
  if (parts.length !== 3 || !resource || !pattern || !actions || !RESOURCES.includes(resource)) {
    throw new CliError(CliErrorCode.USAGE, `--grant "${text}": expected [deny:]<${RESOURCES.join('|')}>:<pattern>:<action>[,<action>…]`);
  }
  const list = actions.split(',');
  const bad = list.find((a) => !ACTIONS.includes(a));
  if (bad !== undefined) throw new CliError(CliErrorCode.USAGE, `--grant "${text}": unknown action "${bad}" (${ACTIONS.join(', ')})`);
  return {
    resource: resource as TokenGrant['resource'],
    pattern,
    actions: list as TokenGrant['actions'],
    ...(effect === 'deny' && { effect }),
  };
}

/** The first line of stdin (a password is never taken from the command line, where `ps` shows it). */
async function readSecret(io: CliIo, what: string): Promise<string> {
  let text = '';
  for await (const chunk of io.stdin) {
    text += typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString('utf8');
    if (text.includes('\n')) break;
  }
  const line = text.split(/\r?\n/)[0] ?? '';
  if (line === '') throw new CliError(CliErrorCode.INPUT_ERROR, `give the ${what} on standard input (one line)`);
  return line;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  ')).join('\n') + '\n';
}

const grantText = (g: TokenGrant) => `${g.effect === 'deny' ? 'deny:' : ''}${g.resource}:${g.pattern}:${g.actions.join(',')}`;

/** `junction login`, `junction users …`, `junction tokens …`. */
export function authCommands(program: Command, io: CliIo): void {
  const client = <T>(command: Command, fn: (c: JunctionClient) => Promise<T>) => withClient(command, fn, io.env);

  program
    .command('login')
    .description(
      'log in (password from JUNCTION_PASSWORD or the first line of stdin); stores the token for --url in ~/.config/junction/credentials (0600)',
    )
    .option('--username <name>', 'the user (default admin)', 'admin')
    .option('--print', 'print the token instead of storing it')
    .action(async (flags: { username: string; print?: boolean }, command: Command) => {
      const password = io.env['JUNCTION_PASSWORD'] || (await readSecret(io, 'password'));
      const { url } = command.optsWithGlobals<{ url: string }>();
      const session = await client(command, (c) => c.login(flags.username, password));
      if (flags.print) {
        await write(io.stdout, `${session.token}\n`);
        return;
      }
      const path = credentialsPath(io.env);
      await saveCredentials(path, url, session);
      await write(io.stdout, `logged in to ${url} as ${flags.username} (token stored in ${path}, expires ${session.expiresAt})\n`);
    });

  const users = program.command('users').description('list, create, change and delete users (needs manage on cluster "users")');
  users
    .command('list')
    .option('--json', 'print JSON')
    .action(async (flags: { json?: boolean }, command: Command) => {
      const list = await client(command, (c) => c.listUsers());
      if (flags.json) return write(io.stdout, JSON.stringify(list, null, 2) + '\n');
      return write(io.stdout, table([['NAME', 'ROLE', 'CREATED'], ...list.map((u) => [u.name, u.role, u.createdAt])]));
    });
  users
    .command('create <name>')
    .description('create a user (password: the first line of stdin)')
    .addOption(new Option('--role <role>', 'admin | editor | viewer').choices(['admin', 'editor', 'viewer']).default('viewer'))
    .action(async (name: string, flags: { role: 'admin' | 'editor' | 'viewer' }, command: Command) => {
      const password = await readSecret(io, 'password');
      const u = await client(command, (c) => c.createUser({ name, password, role: flags.role }));
      await write(io.stdout, `created user ${u.name} (${u.role})\n`);
    });
  users.command('set-role <name> <role>').action(async (name: string, role: string, _f: object, command: Command) => {
    if (!['admin', 'editor', 'viewer'].includes(role))
      throw new CliError(CliErrorCode.USAGE, `role must be admin, editor or viewer (got "${role}")`);
    const u = await client(command, (c) => c.updateUser(name, { role: role as 'viewer' }));
    await write(io.stdout, `user ${u.name} is now ${u.role}\n`);
  });
  users
    .command('set-password <name>')
    .description("change a password (the first line of stdin); ends the user's sessions")
    .action(async (name: string, _f: object, command: Command) => {
      const password = await readSecret(io, 'password');
      await client(command, (c) => c.updateUser(name, { password }));
      await write(io.stdout, `changed the password of ${name}\n`);
    });
  users
    .command('delete <name>')
    .description('delete a user, end their sessions and revoke their tokens')
    .action(async (name: string, _f: object, command: Command) => {
      await client(command, (c) => c.deleteUser(name));
      await write(io.stdout, `deleted user ${name}\n`);
    });

  const tokens = program.command('tokens').description('service tokens for applications and connectors');
  tokens
    .command('create <name>')
    .description('make a token (printed once: store it); its grants cannot exceed yours')
    .requiredOption('--grant <grant...>', '[deny:]<resource>:<pattern>:<actions>, e.g. station:orders-*:produce,consume (repeatable)')
    .option('--expires-in-s <seconds>', 'expiry (default: none; revoke it instead)', intArg(1))
    .option('--json', 'print JSON (with the token)')
    .action(async (name: string, flags: { grant: string[]; expiresInS?: number; json?: boolean }, command: Command) => {
      const grants = flags.grant.map(parseGrant);
      const t = await client(command, (c) =>
        c.createToken({ name, grants, ...(flags.expiresInS !== undefined && { expiresInS: flags.expiresInS }) }),
      );
      if (flags.json) return write(io.stdout, JSON.stringify(t, null, 2) + '\n');
      await write(io.stderr, `created token ${t.id} (${t.name}); it is shown only now:\n`);
      return write(io.stdout, `${t.token}\n`);
    });
  tokens
    .command('list')
    .option('--json', 'print JSON')
    .action(async (flags: { json?: boolean }, command: Command) => {
      const list = await client(command, (c) => c.listTokens());
      if (flags.json) return write(io.stdout, JSON.stringify(list, null, 2) + '\n');
      return write(
        io.stdout,
        table([
          ['ID', 'NAME', 'OWNER', 'EXPIRES', 'STATE', 'GRANTS'],
          ...list.map((t) => [
            t.id,
            t.name,
            t.owner,
            t.expiresAt ?? '-',
            t.revoked ? 'revoked' : 'active',
            t.grants.map(grantText).join(' '),
          ]),
        ]),
      );
    });
  tokens.command('revoke <id>').action(async (id: string, _f: object, command: Command) => {
    await client(command, (c) => c.revokeToken(id));
    await write(io.stdout, `revoked token ${id}\n`);
  });
}
