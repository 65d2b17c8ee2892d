import { useEffect, useState } from 'preact/hooks';
import { api, enc, fmtNum, fmtTime, live } from '../api.js';
import type { ApiErrorBody } from '../api.js';
import { Chart, ErrorBox, Link, Stat, errorOf, navigate, useAction, useAuthMode, useCan, useHistory } from '../ui.js';
import { ConfigForm } from './config-form.js';
import type { JsonSchema } from './config-form.js';

/** Produce → landed of the last message the sink landed (GET /v1/connectors/:name/status). */
interface Freshness {
  lastLandedAt?: string;
  lastProducedAt?: string;
  seconds?: number;
}
interface Row {
  name: string;
  type: string;
  state: string;
  tasks: { id: number; state: string; trace?: string; lastError?: { code: string; message: string; at: number } }[];
  lag?: number;
  throughput: { msgsPerSec: number; bytesPerSec: number };
  lastError?: { code: string; message: string; at: number };
  freshness?: Freshness | null;
}
interface Plugin {
  name: string;
  kind: 'sink' | 'source';
  version: string;
  description?: string;
  builtin: boolean;
}

export function fmtFreshness(f: Freshness | null | undefined): string {
  return f && typeof f.seconds === 'number' ? `${fmtNum(f.seconds)} s` : '—';
}

export function ConnectorsPage() {
  const can = useCan();
  const [rows, setRows] = useState<Row[] | undefined>();
  const [error, setError] = useState<ApiErrorBody | undefined>();
  const [plugins, setPlugins] = useState<Plugin[] | undefined>();
  const [creating, setCreating] = useState<string | undefined>();
  useEffect(() => live<{ connectors: Row[] }>('/v1/live/connectors', (s) => setRows(s.connectors), setError), []);
  const mode = useAuthMode();
  useEffect(() => {
    if (!can('cluster', 'read', 'plugins')) return;
    api<Plugin[]>('GET', '/v1/connector-plugins').then(setPlugins, (e) => setError(errorOf(e)));
  }, [mode]);
  const mayCreate = can('connector', 'manage');
  return (
    <div>
      <h2>Connectors</h2>
      <ErrorBox error={error} />
      {rows && rows.length === 0 && <p class="muted">No connectors yet.</p>}
      {rows && rows.length > 0 && (
        <table data-testid="connectors">
          <thead>
            <tr>
              <th>connector</th>
              <th>type</th>
              <th>state</th>
              <th>tasks</th>
              <th>lag</th>
              <th>msg/s</th>
              <th>freshness</th>
              <th>last error</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((c) => (
              <tr data-connector={c.name}>
                <td>
                  <Link href={`/connectors/${enc(c.name)}`}>{c.name}</Link>
                </td>
                <td>{c.type}</td>
                <td>
                  <span class={`state state-${c.state}`}>{c.state}</span>
                </td>
                <td>{c.tasks.map((t) => `${t.id}:${t.state}`).join(' ')}</td>
                <td>{fmtNum(c.lag)}</td>
                <td>{fmtNum(c.throughput.msgsPerSec)}</td>
                <td>{fmtFreshness(c.freshness)}</td>
                <td>{c.lastError ? `${c.lastError.code}: ${c.lastError.message}` : ''}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <h3>Catalog</h3>
      {plugins && (
        <div class="cards" data-testid="catalog">
          {plugins.map((p) => (
            <div class="card" data-plugin={p.name}>
              <div>
                <b>{p.name}</b> <span class="tag">{p.kind}</span> <span class="muted">{p.version}</span>
              </div>
              <p class="muted">{p.description ?? ''}</p>
              {mayCreate && (
                <button onClick={() => setCreating(p.name)} data-testid={`create-${p.name}`}>
                  Create {p.kind}
                </button>
              )}
            </div>
          ))}
        </div>
      )}
      {creating && <CreateConnector plugin={creating} onClose={() => setCreating(undefined)} />}
    </div>
  );
}

function CreateConnector(props: { plugin: string; onClose: () => void }) {
  const [schema, setSchema] = useState<JsonSchema | undefined>();
  const [kind, setKind] = useState<string>('sink');
  const [name, setName] = useState('');
  const [station, setStation] = useState('');
  const [tasks, setTasks] = useState('1');
  const [config, setConfig] = useState<Record<string, unknown>>({});
  const [run, error, busy] = useAction();
  useEffect(() => {
    void run(async () => {
      const d = await api<{ kind: string; config: JsonSchema }>('GET', `/v1/connector-plugins/${enc(props.plugin)}`);
      setSchema(d.config);
      setKind(d.kind);
    });
  }, [props.plugin]);
  const submit = async (e: Event) => {
    e.preventDefault();
    const ok = await run(() => api('POST', '/v1/connectors', { name, plugin: props.plugin, station, tasks: Number(tasks), config }));
    if (ok) navigate(`/connectors/${enc(name)}`);
  };
  return (
    <div class="panel" data-testid="connector-form">
      <div class="page-head">
        <h3>
          New {kind}: {props.plugin}
        </h3>
        <button class="link" onClick={props.onClose}>
          cancel
        </button>
      </div>
      <form class="form" onSubmit={(e) => void submit(e)}>
        <label>
          name <input name="name" value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} required />
        </label>
        <label>
          station <input name="station" value={station} onInput={(e) => setStation((e.target as HTMLInputElement).value)} required />
        </label>
        <label>
          tasks{' '}
          <input
            name="tasks"
            type="number"
            min="1"
            max="64"
            value={tasks}
            onInput={(e) => setTasks((e.target as HTMLInputElement).value)}
          />
        </label>
        {schema && (
          <fieldset>
            <legend>config</legend>
            <ConfigForm schema={schema} value={config} onChange={setConfig} />
          </fieldset>
        )}
        <ErrorBox error={error} />
        <button type="submit" disabled={busy || !schema}>
          Create connector
        </button>
      </form>
    </div>
  );
}

interface Status {
  name: string;
  connector: { state: string; trace?: string };
  tasks: Row['tasks'];
  type: string;
  lag?: number;
  throughput: { msgsPerSec: number; bytesPerSec: number };
  lastError?: { code: string; message: string; at: number };
  retrying?: { since: number; attempts: number; nextAttemptAt?: number };
  freshness?: Freshness | null;
}

export function ConnectorPage(props: { name: string }) {
  const can = useCan();
  const mayManage = can('connector', 'manage', props.name);
  const [status, setStatus] = useState<Status | undefined>();
  const [info, setInfo] = useState<{ plugin: string; station: string; config: { config: Record<string, unknown> } } | undefined>();
  const [offsets, setOffsets] = useState<{ partition: number; offset: number }[] | undefined>();
  const [data, push] = useHistory();
  const [run, error] = useAction();
  const refresh = async () => {
    const s = await api<Status>('GET', `/v1/connectors/${enc(props.name)}/status`);
    setStatus(s);
    push(Date.now(), [s.throughput.msgsPerSec, typeof s.freshness?.seconds === 'number' ? s.freshness.seconds : 0]);
  };
  useEffect(() => {
    void run(async () => {
      setInfo(await api('GET', `/v1/connectors/${enc(props.name)}`));
      await refresh();
    });
    // The connectors stream carries every connector; this page follows it for its own status.
    return live<{ connectors: Row[] }>('/v1/live/connectors', (snap) => {
      if (snap.connectors.some((c) => c.name === props.name)) void refresh().catch(() => {});
    });
  }, [props.name]);
  const act = (method: string, path: string, body?: unknown) =>
    run(async () => {
      await api(method, `/v1/connectors/${enc(props.name)}${path}`, body);
      await refresh();
    });
  const loadOffsets = () =>
    run(async () =>
      setOffsets(
        (await api<{ offsets: { partition: number; offset: number }[] }>('GET', `/v1/connectors/${enc(props.name)}/offsets`)).offsets,
      ),
    );
  const del = () =>
    run(async () => {
      if (!confirm(`Delete connector ${props.name}?`)) return;
      await api('DELETE', `/v1/connectors/${enc(props.name)}`);
      navigate('/connectors');
    });
  return (
    <div>
      <h2>
        <Link href="/connectors">Connectors</Link> / {props.name}
      </h2>
      <ErrorBox error={error} />
      {status && (
        <>
          <div class="stats">
            <Stat
              label="state"
              value={
                <span class={`state state-${status.connector.state}`} data-testid="connector-state">
                  {status.connector.state}
                </span>
              }
            />
            <Stat label="type" value={status.type} />
            <Stat label="lag" value={fmtNum(status.lag)} />
            <Stat label="msg/s" value={fmtNum(status.throughput.msgsPerSec)} />
            <Stat
              label="freshness (produce → landed)"
              value={<span data-testid="connector-freshness">{fmtFreshness(status.freshness)}</span>}
            />
          </div>
          {info && (
            <p class="muted">
              plugin {info.plugin} · station <Link href={`/stations/${enc(info.station)}`}>{info.station}</Link>
              {status.freshness?.lastLandedAt &&
                ` · last landed ${fmtTime(status.freshness.lastLandedAt)} (produced ${fmtTime(status.freshness.lastProducedAt)})`}
            </p>
          )}
          {mayManage && (
            <div class="actions row" data-testid="connector-actions">
              <button onClick={() => void act('PUT', '/pause')}>Pause</button>
              <button onClick={() => void act('PUT', '/resume')}>Resume</button>
              <button onClick={() => void act('POST', '/restart?includeTasks=true')}>Restart</button>
              <button onClick={() => void act('POST', '/restart?includeTasks=true&onlyFailed=true')}>Restart failed tasks</button>
              <button onClick={() => void act('PUT', '/stop')}>Stop</button>
              <button class="danger" onClick={() => void del()}>
                Delete
              </button>
            </div>
          )}
          <Chart
            title="Throughput and freshness"
            series={[
              { label: 'msg/s', color: '#2563eb' },
              { label: 'freshness s', color: '#d97706' },
            ]}
            data={data}
          />
          {status.connector.trace && <pre class="trace">{status.connector.trace}</pre>}
          {status.retrying && (
            <p class="warn">
              retrying since {fmtTime(status.retrying.since)}: {status.retrying.attempts} attempts
            </p>
          )}
          <h3>Tasks</h3>
          <table data-testid="tasks">
            <thead>
              <tr>
                <th>task</th>
                <th>state</th>
                <th>last error</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {status.tasks.map((t) => (
                <tr>
                  <td>{t.id}</td>
                  <td>
                    <span class={`state state-${t.state}`}>{t.state}</span>
                  </td>
                  <td>
                    {t.lastError ? `${t.lastError.code}: ${t.lastError.message} (${fmtTime(t.lastError.at)})` : ''}
                    {t.trace && (
                      <details>
                        <summary>trace</summary>
                        <pre class="trace">{t.trace}</pre>
                      </details>
                    )}
                  </td>
                  <td>
                    {mayManage && (
                      <button class="link" onClick={() => void act('POST', `/tasks/${t.id}/restart`)}>
                        restart
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          <h3>Offsets</h3>
          <div class="row">
            <button onClick={() => void loadOffsets()}>Show offsets</button>
            {mayManage && (
              <button onClick={() => void act('DELETE', '/offsets').then(loadOffsets)} title="only when the connector is STOPPED">
                Reset offsets
              </button>
            )}
          </div>
          {offsets && (
            <table>
              <thead>
                <tr>
                  <th>partition</th>
                  <th>offset</th>
                </tr>
              </thead>
              <tbody>
                {offsets.map((o) => (
                  <tr>
                    <td>{o.partition}</td>
                    <td>{o.offset}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          {info && (
            <>
              <h3>Config</h3>
              <pre class="value">{JSON.stringify(info.config.config, null, 2)}</pre>
            </>
          )}
        </>
      )}
    </div>
  );
}
