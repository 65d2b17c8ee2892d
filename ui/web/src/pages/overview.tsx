import { useEffect, useState } from 'preact/hooks';
import { fmtBytes, fmtNum, live } from '../api.js';
import type { ApiErrorBody } from '../api.js';
import { Chart, ErrorBox, Link, Stat, useHistory } from '../ui.js';

interface ConnectorRow {
  name: string;
  type: string;
  state: string;
  tasks: { id: number; state: string }[];
  lag?: number;
  throughput: { msgsPerSec: number };
  freshness?: { seconds?: number | null } | null;
}
export interface Overview {
  at: number;
  stations: number;
  messages: number;
  bytes: number;
  deadLetters: number;
  produceRate: number;
  consumeRate: number;
  connectors?: { total: number; byState: Record<string, number>; rows: ConnectorRow[] };
  alerts: { kind: string; subject: string; message: string }[];
}

const FRESH = [{ label: 'seconds', color: '#d97706' }];
const SERIES = [
  { label: 'produced msg/s', color: '#2563eb' },
  { label: 'consumed msg/s', color: '#16a34a' },
];

export function OverviewPage() {
  const [snap, setSnap] = useState<Overview | undefined>();
  const [error, setError] = useState<ApiErrorBody | undefined>();
  const [data, push] = useHistory();
  const [fresh, pushFresh] = useHistory();
  useEffect(
    () =>
      live<Overview>(
        '/v1/live/overview',
        (s) => {
          setSnap(s);
          setError(undefined);
          push(s.at, [s.produceRate, s.consumeRate]);
          // The stalest sink: produce → landed of the last message it landed (issue 19's freshness).
          const seconds = (s.connectors?.rows ?? []).map((c) => c.freshness?.seconds).filter((x): x is number => typeof x === 'number');
          if (seconds.length > 0) pushFresh(s.at, [Math.max(...seconds)]);
        },
        setError,
      ),
    [],
  );
  return (
    <div>
      <h2>Overview</h2>
      <ErrorBox error={error} />
      {!snap ? (
        <p class="muted">Loading…</p>
      ) : (
        <>
          <div class="stats">
            <Stat label="stations" value={fmtNum(snap.stations)} testId="stat-stations" />
            <Stat label="messages" value={fmtNum(snap.messages)} testId="stat-messages" />
            <Stat label="stored" value={fmtBytes(snap.bytes)} />
            <Stat label="produce msg/s" value={fmtNum(snap.produceRate)} testId="stat-produce-rate" />
            <Stat label="consume msg/s" value={fmtNum(snap.consumeRate)} />
            <Stat label="dead letters" value={fmtNum(snap.deadLetters)} testId="stat-dead-letters" />
            {snap.connectors && (
              <Stat
                label="connectors running"
                value={`${snap.connectors.byState['RUNNING'] ?? 0} / ${snap.connectors.total}`}
                testId="stat-connectors"
              />
            )}
          </div>
          <Chart title="Throughput" series={SERIES} data={data} />
          {fresh[0] && fresh[0].length > 0 && (
            <Chart title="Freshness of the stalest sink (produce → landed)" series={FRESH} data={fresh} height={120} />
          )}
          <h3>Alerts</h3>
          {snap.alerts.length === 0 ? (
            <p class="muted" data-testid="alerts">
              Nothing is stuck.
            </p>
          ) : (
            <ul class="alerts" data-testid="alerts">
              {snap.alerts.map((a) => (
                <li class={`alert alert-${a.kind}`}>
                  <span class="tag">{a.kind}</span> {a.message}
                </li>
              ))}
            </ul>
          )}
          {snap.connectors && snap.connectors.rows.length > 0 && (
            <>
              <h3>Connector health</h3>
              <table>
                <thead>
                  <tr>
                    <th>connector</th>
                    <th>type</th>
                    <th>state</th>
                    <th>tasks</th>
                    <th>lag</th>
                    <th>msg/s</th>
                    <th>freshness</th>
                  </tr>
                </thead>
                <tbody>
                  {snap.connectors.rows.map((c) => (
                    <tr>
                      <td>
                        <Link href={`/connectors/${encodeURIComponent(c.name)}`}>{c.name}</Link>
                      </td>
                      <td>{c.type}</td>
                      <td>
                        <span class={`state state-${c.state}`}>{c.state}</span>
                      </td>
                      <td>{c.tasks.map((t) => t.state).join(', ')}</td>
                      <td>{fmtNum(c.lag)}</td>
                      <td>{fmtNum(c.throughput.msgsPerSec)}</td>
                      <td>{c.freshness && typeof c.freshness.seconds === 'number' ? `${fmtNum(c.freshness.seconds)} s` : '—'}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </>
          )}
        </>
      )}
    </div>
  );
}
