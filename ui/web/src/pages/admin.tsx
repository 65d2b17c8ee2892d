/** Schemas (the registry's Confluent API), users and tokens (auth's API), and the login page. */
import { useEffect, useState } from 'preact/hooks';
import { ApiError, api, enc, fmtTime, setSession } from '../api.js';
import { ErrorBox, useAction, useAuthMode, useCan } from '../ui.js';

export function SchemasPage() {
  const can = useCan();
  const [subjects, setSubjects] = useState<string[] | undefined>();
  const [open, setOpen] = useState<
    { subject: string; versions: number[]; version?: number; schema?: string; schemaType?: string } | undefined
  >();
  const [run, error] = useAction();
  const [newSubject, setNewSubject] = useState('');
  const [newType, setNewType] = useState('JSON');
  const [newSchema, setNewSchema] = useState('');
  const load = () => run(async () => setSubjects(await api<string[]>('GET', '/v1/schema-registry/subjects')));
  useEffect(() => void load(), []);
  const show = (subject: string, version?: number) =>
    run(async () => {
      const versions = await api<number[]>('GET', `/v1/schema-registry/subjects/${enc(subject)}/versions`);
      const v = version ?? versions[versions.length - 1];
      const s =
        v === undefined
          ? undefined
          : await api<{ schema: string; schemaType?: string }>('GET', `/v1/schema-registry/subjects/${enc(subject)}/versions/${v}`);
      setOpen({
        subject,
        versions,
        ...(v !== undefined && { version: v }),
        ...(s && { schema: s.schema, schemaType: s.schemaType ?? 'AVRO' }),
      });
    });
  const register = (e: Event) => {
    e.preventDefault();
    void run(async () => {
      await api('POST', `/v1/schema-registry/subjects/${enc(newSubject)}/versions`, { schema: newSchema, schemaType: newType });
      await load();
      await show(newSubject);
    });
  };
  const pretty = (s: string) => {
    try {
      return JSON.stringify(JSON.parse(s), null, 2);
    } catch {
      return s;
    }
  };
  return (
    <div>
      <h2>Schemas</h2>
      <ErrorBox error={error} />
      <div class="split">
        <ul class="list" data-testid="subjects">
          {subjects?.length === 0 && <li class="muted">No subjects.</li>}
          {subjects?.map((s) => (
            <li>
              <button class="link" onClick={() => void show(s)}>
                {s}
              </button>
            </li>
          ))}
        </ul>
        <div>
          {open && (
            <div>
              <h3>{open.subject}</h3>
              <div class="row">
                versions:{' '}
                {open.versions.map((v) => (
                  <button class={`link ${v === open.version ? 'active' : ''}`} onClick={() => void show(open.subject, v)}>
                    v{v}
                  </button>
                ))}
                <span class="tag">{open.schemaType}</span>
              </div>
              <pre class="value">{open.schema && pretty(open.schema)}</pre>
            </div>
          )}
          {can('schema', 'manage') && (
            <form class="form" onSubmit={register}>
              <h3>Register a schema version</h3>
              <label>
                subject{' '}
                <input
                  value={newSubject}
                  onInput={(e) => setNewSubject((e.target as HTMLInputElement).value)}
                  placeholder="orders-value"
                  required
                />
              </label>
              <label>
                type
                <select value={newType} onChange={(e) => setNewType((e.target as HTMLSelectElement).value)}>
                  <option>JSON</option>
                  <option>AVRO</option>
                  <option>PROTOBUF</option>
                </select>
              </label>
              <label>
                schema{' '}
                <textarea rows={6} value={newSchema} onInput={(e) => setNewSchema((e.target as HTMLTextAreaElement).value)} required />
              </label>
              <button type="submit">Register</button>
            </form>
          )}
        </div>
      </div>
    </div>
  );
}

interface User {
  name: string;
  role: string;
  createdAt: string;
}
interface Token {
  id: string;
  name: string;
  owner: string;
  createdAt: string;
  expiresAt?: string;
  revoked: boolean;
}

export function UsersPage() {
  const can = useCan();
  const manageUsers = can('cluster', 'manage', 'users');
  const mode = useAuthMode();
  const [users, setUsers] = useState<User[] | undefined>();
  const [tokens, setTokens] = useState<Token[] | undefined>();
  const [newToken, setNewToken] = useState<string | undefined>();
  const [run, error] = useAction();
  const [u, setU] = useState({ name: '', password: '', role: 'viewer' });
  const [t, setT] = useState({ name: '', grants: '[{"resource":"station","pattern":"*","actions":["produce"]}]', ttl: '' });
  const load = () =>
    run(async () => {
      if (manageUsers) setUsers(await api<User[]>('GET', '/v1/users'));
      setTokens(await api<Token[]>('GET', '/v1/tokens'));
    });
  useEffect(() => {
    if (mode === 'user') void load();
  }, [mode]);
  return (
    <div>
      <h2>Users and tokens</h2>
      <ErrorBox error={error} />
      {manageUsers && (
        <>
          <h3>Users</h3>
          <table data-testid="users">
            <thead>
              <tr>
                <th>user</th>
                <th>role</th>
                <th>created</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {users?.map((x) => (
                <tr>
                  <td>{x.name}</td>
                  <td>
                    <select
                      value={x.role}
                      onChange={(e) =>
                        void run(
                          async () => (
                            await api('PATCH', `/v1/users/${enc(x.name)}`, { role: (e.target as HTMLSelectElement).value }),
                            await load()
                          ),
                        )
                      }
                    >
                      <option>admin</option>
                      <option>editor</option>
                      <option>viewer</option>
                    </select>
                  </td>
                  <td>{fmtTime(x.createdAt)}</td>
                  <td>
                    <button
                      class="link danger"
                      onClick={() =>
                        void run(
                          async () => confirm(`Delete user ${x.name}?`) && (await api('DELETE', `/v1/users/${enc(x.name)}`), await load()),
                        )
                      }
                    >
                      delete
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          <form
            class="form row"
            onSubmit={(e) => {
              e.preventDefault();
              void run(async () => {
                await api('POST', '/v1/users', u);
                setU({ name: '', password: '', role: 'viewer' });
                await load();
              });
            }}
          >
            <input placeholder="name" value={u.name} onInput={(e) => setU({ ...u, name: (e.target as HTMLInputElement).value })} required />
            <input
              placeholder="password"
              type="password"
              autocomplete="new-password"
              value={u.password}
              onInput={(e) => setU({ ...u, password: (e.target as HTMLInputElement).value })}
              required
            />
            <select value={u.role} onChange={(e) => setU({ ...u, role: (e.target as HTMLSelectElement).value })}>
              <option>viewer</option>
              <option>editor</option>
              <option>admin</option>
            </select>
            <button type="submit">Add user</button>
          </form>
        </>
      )}
      <h3>My tokens</h3>
      <table data-testid="tokens">
        <thead>
          <tr>
            <th>id</th>
            <th>name</th>
            <th>owner</th>
            <th>created</th>
            <th>expires</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {tokens?.map((x) => (
            <tr>
              <td>
                <code>{x.id}</code>
              </td>
              <td>{x.name}</td>
              <td>{x.owner}</td>
              <td>{fmtTime(x.createdAt)}</td>
              <td>{x.revoked ? 'revoked' : x.expiresAt ? fmtTime(x.expiresAt) : 'never'}</td>
              <td>
                <button
                  class="link danger"
                  onClick={() => void run(async () => (await api('DELETE', `/v1/tokens/${enc(x.id)}`), await load()))}
                >
                  revoke
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <form
        class="form"
        onSubmit={(e) => {
          e.preventDefault();
          void run(async () => {
            const body = { name: t.name, grants: JSON.parse(t.grants) as unknown, ...(t.ttl && { expiresInS: Number(t.ttl) }) };
            const res = await api<{ token: string }>('POST', '/v1/tokens', body);
            setNewToken(res.token);
            await load();
          });
        }}
      >
        <label>
          token name <input value={t.name} onInput={(e) => setT({ ...t, name: (e.target as HTMLInputElement).value })} required />
        </label>
        <label>
          grants (JSON){' '}
          <textarea rows={3} value={t.grants} onInput={(e) => setT({ ...t, grants: (e.target as HTMLTextAreaElement).value })} />
        </label>
        <button type="submit">Create token</button>
      </form>
      {newToken && (
        <p class="ok">
          The token (shown once): <code>{newToken}</code>
        </p>
      )}
    </div>
  );
}

export function LoginPage(props: { onLogin: () => void }) {
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [run, error] = useAction();
  const submit = async (e: Event) => {
    e.preventDefault();
    const ok = await run(async () => {
      try {
        const t = await api<{ token: string; refreshToken: string }>('POST', '/v1/auth/login', { username, password });
        setSession({ token: t.token, refreshToken: t.refreshToken });
      } catch (err) {
        if (err instanceof ApiError && err.status === 401)
          throw new ApiError(401, { code: err.body.code, message: 'wrong username or password' });
        throw err;
      }
    });
    if (ok) props.onLogin();
  };
  return (
    <div class="login">
      <h1>Junction</h1>
      <form class="form" onSubmit={(e) => void submit(e)} data-testid="login-form">
        <label>
          username{' '}
          <input
            name="username"
            autocomplete="username"
            value={username}
            onInput={(e) => setUsername((e.target as HTMLInputElement).value)}
            required
          />
        </label>
        <label>
          password{' '}
          <input
            name="password"
            type="password"
            autocomplete="current-password"
            value={password}
            onInput={(e) => setPassword((e.target as HTMLInputElement).value)}
            required
          />
        </label>
        <ErrorBox error={error} />
        <button type="submit">Log in</button>
      </form>
    </div>
  );
}
