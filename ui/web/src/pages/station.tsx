import { useEffect, useState } from 'preact/hooks';
import { api, enc, fmtBytes, fmtDuration, fmtNum, fmtTime, live } from '../api.js';
import type { ApiErrorBody } from '../api.js';
import { Chart, ErrorBox, Link, Stat, navigate, useAction, useCan, useHistory } from '../ui.js';
import { MessageBrowser, ProduceForm } from './messages.js';
import { DeadLetters } from './dls.js';

interface PartitionInfo {
  partition: number;
  firstOffset: number;
  nextOffset: number;
  messages: number;
  bytes: number;
}
export interface StationInfo {
  name: string;
  config: {
    partitions: number;
    storage: string;
    retention: { maxAgeMs?: number; maxMessages?: number; maxBytes?: number; ackBased?: boolean };
    dedupWindowMs: number;
    maxMessageBytes: number;
    deadLetter: { enabled: boolean; maxDeliveries: number; maxAckTimeMs: number };
    schema?: { subject?: string; version: number | 'latest'; policy: string };
  };
  createdAt: number;
  partitions: PartitionInfo[];
  messages: number;
  bytes: number;
  groups: string[];
  health?: { status: string; reasons: string[] };
}
interface GroupPartition {
  partition: number;
  nextOffset: number;
  ackFloor: number;
  lag: number;
  pending: number;
  redeliveryQueued: number;
  /** Moved to the dead-letter station from this partition (absent: an older broker). */
  deadLettered?: number;
}
export interface GroupInfo {
  group: string;
  lag: number;
  pending: number;
  redeliveries: number;
  deadLettered: number;
  maxDeliveries: number;
  maxAckTimeMs: number;
  partitions: GroupPartition[];
  /** Age of the oldest message the group has not settled (null: none; absent: an older broker). */
  oldestUnackedAgeSeconds?: number | null;
}
interface Snapshot {
  at: number;
  station: StationInfo;
  deadLetters: number;
  groups: GroupInfo[];
  produceRate: number;
  consumeRates: Record<string, number>;
}

const TABS = ['overview', 'messages', 'dead-letters', 'settings'] as const;
type Tab = (typeof TABS)[number];

export function StationPage(props: { name: string; tab: string | undefined }) {
  const tab: Tab = (TABS as readonly string[]).includes(props.tab ?? '') ? (props.tab as Tab) : 'overview';
  const [snap, setSnap] = useState<Snapshot | undefined>();
  const [error, setError] = useState<ApiErrorBody | undefined>();
  const [data, push] = useHistory();
  const [groupData, pushGroups] = useHistory();
  const [produced, setProduced] = useState(0);
  useEffect(() => {
    setSnap(undefined);
    return live<Snapshot>(
      `/v1/live/stations/${enc(props.name)}`,
      (s) => {
        setSnap(s);
        setError(undefined);
        push(s.at, [s.produceRate, Object.values(s.consumeRates).reduce((a, b) => a + b, 0)]);
        pushGroups(s.at, [
          s.groups.reduce((a, g) => a + g.lag, 0),
          s.groups.reduce((a, g) => Math.max(a, typeof g.oldestUnackedAgeSeconds === 'number' ? g.oldestUnackedAgeSeconds : 0), 0),
        ]);
      },
      setError,
    );
  }, [props.name]);
  const base = `/stations/${enc(props.name)}`;
  return (
    <div>
      <div class="page-head">
        <h2>
          <Link href="/stations">Stations</Link> / <span data-testid="station-name">{props.name}</span>
        </h2>
      </div>
      <nav class="tabs">
        {TABS.map((t) => (
          <Link href={t === 'overview' ? base : `${base}/${t}`} class={t === tab ? 'active' : ''}>
            {t === 'dead-letters' ? `dead letters${snap ? ` (${snap.deadLetters})` : ''}` : t}
          </Link>
        ))}
      </nav>
      <ErrorBox error={error} />
      {tab === 'overview' && snap && <StationOverview snap={snap} data={data} groupData={groupData} />}
      {tab === 'messages' && (
        <>
          <ProduceForm station={props.name} onProduced={() => setProduced((n) => n + 1)} />
          <MessageBrowser station={props.name} partitions={snap?.station.partitions ?? []} reload={produced} />
        </>
      )}
      {tab === 'dead-letters' && <DeadLetters station={props.name} groups={snap?.groups ?? []} count={snap?.deadLetters} />}
      {tab === 'settings' && snap && <StationSettings station={snap.station} />}
    </div>
  );
}

const SERIES = [
  { label: 'produced msg/s', color: '#2563eb' },
  { label: 'consumed msg/s', color: '#16a34a' },
];
const GROUP_SERIES = [
  { label: 'lag, all groups', color: '#9333ea' },
  { label: 'oldest unacked s, worst group', color: '#dc2626' },
];

function StationOverview(props: { snap: Snapshot; data: number[][]; groupData: number[][] }) {
  const { station, groups } = props.snap;
  const r = station.config.retention;
  const [open, setOpen] = useState<string | undefined>();
  return (
    <div>
      <div class="stats">
        <Stat label="messages" value={fmtNum(station.messages)} testId="station-messages" />
        <Stat label="stored" value={fmtBytes(station.bytes)} />
        <Stat label="partitions" value={station.partitions.length} />
        <Stat label="produce msg/s" value={fmtNum(props.snap.produceRate)} />
        <Stat label="dead letters" value={fmtNum(props.snap.deadLetters)} testId="station-dead-letters" />
      </div>
      <p class="muted">
        retention: {r.maxAgeMs !== undefined ? `max age ${fmtDuration(r.maxAgeMs)}` : ''}{' '}
        {r.maxMessages !== undefined ? `· max ${fmtNum(r.maxMessages)} messages` : ''}{' '}
        {r.maxBytes !== undefined ? `· max ${fmtBytes(r.maxBytes)}` : ''} {r.ackBased ? '· ack-based' : ''} · storage{' '}
        {station.config.storage} · dead-lettering{' '}
        {station.config.deadLetter.enabled ? `after ${station.config.deadLetter.maxDeliveries} deliveries` : 'off'}
        {station.config.schema
          ? ` · schema ${station.config.schema.subject ?? `${station.name}-value`} (${station.config.schema.policy})`
          : ''}{' '}
        · created {fmtTime(station.createdAt)}
      </p>
      <Chart title="Throughput" series={SERIES} data={props.data} />
      {groups.length > 0 && <Chart title="Consumer groups: lag and oldest unacked" series={GROUP_SERIES} data={props.groupData} />}
      <h3>Partitions</h3>
      <table>
        <thead>
          <tr>
            <th>partition</th>
            <th>first offset</th>
            <th>next offset</th>
            <th>messages</th>
            <th>bytes</th>
          </tr>
        </thead>
        <tbody>
          {station.partitions.map((p) => (
            <tr>
              <td>{p.partition}</td>
              <td>{p.firstOffset}</td>
              <td>{p.nextOffset}</td>
              <td>{fmtNum(p.messages)}</td>
              <td>{fmtBytes(p.bytes)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <h3>Consumer groups</h3>
      {groups.length === 0 ? (
        <p class="muted">No consumer groups.</p>
      ) : (
        <table data-testid="groups">
          <thead>
            <tr>
              <th>group</th>
              <th>lag</th>
              <th>oldest unacked</th>
              <th>in flight</th>
              <th>redeliveries</th>
              <th>dead-lettered</th>
              <th>msg/s</th>
            </tr>
          </thead>
          <tbody>
            {groups.map((g) => (
              <>
                <tr data-group={g.group}>
                  <td>
                    <button class="link" onClick={() => setOpen(open === g.group ? undefined : g.group)}>
                      {open === g.group ? '▾' : '▸'} {g.group}
                    </button>
                  </td>
                  <td class="lag">{fmtNum(g.lag)}</td>
                  <td class="oldest">
                    {typeof g.oldestUnackedAgeSeconds === 'number' ? fmtDuration(Math.round(g.oldestUnackedAgeSeconds * 1000)) : '—'}
                  </td>
                  <td>{fmtNum(g.pending)}</td>
                  <td>{fmtNum(g.redeliveries)}</td>
                  <td class="dead">{fmtNum(g.deadLettered)}</td>
                  <td>{fmtNum(props.snap.consumeRates[g.group])}</td>
                </tr>
                {open === g.group &&
                  g.partitions.map((p) => (
                    <tr class="sub" data-partition={p.partition}>
                      <td>partition {p.partition}</td>
                      <td class="lag">{fmtNum(p.lag)}</td>
                      <td>ack floor {p.ackFloor}</td>
                      <td>{fmtNum(p.pending)}</td>
                      <td>{fmtNum(p.redeliveryQueued)} queued</td>
                      <td class="dead">{fmtNum(p.deadLettered)}</td>
                      <td>next {p.nextOffset}</td>
                    </tr>
                  ))}
              </>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}

/** The options that may change after creation (partitions and storage cannot). */
function StationSettings(props: { station: StationInfo }) {
  const can = useCan();
  const s = props.station;
  const editable = can('station', 'manage', s.name);
  const [run, error, busy] = useAction();
  const [saved, setSaved] = useState(false);
  const [maxAgeH, setMaxAgeH] = useState(s.config.retention.maxAgeMs !== undefined ? String(s.config.retention.maxAgeMs / 3600_000) : '');
  const [maxMessages, setMaxMessages] = useState(
    s.config.retention.maxMessages !== undefined ? String(s.config.retention.maxMessages) : '',
  );
  const [maxDeliveries, setMaxDeliveries] = useState(String(s.config.deadLetter.maxDeliveries));
  const [maxAckTimeMs, setMaxAckTimeMs] = useState(String(s.config.deadLetter.maxAckTimeMs));
  const [dlsEnabled, setDlsEnabled] = useState(s.config.deadLetter.enabled);
  const submit = async (e: Event) => {
    e.preventDefault();
    setSaved(false);
    const retention: Record<string, unknown> = { ...s.config.retention };
    if (maxAgeH) retention['maxAgeMs'] = Math.round(Number(maxAgeH) * 3600_000);
    else delete retention['maxAgeMs'];
    if (maxMessages) retention['maxMessages'] = Number(maxMessages);
    else delete retention['maxMessages'];
    const ok = await run(() =>
      api('PATCH', `/v1/stations/${enc(s.name)}`, {
        retention,
        deadLetter: { enabled: dlsEnabled, maxDeliveries: Number(maxDeliveries), maxAckTimeMs: Number(maxAckTimeMs) },
      }),
    );
    setSaved(ok);
  };
  const del = async () => {
    if (!confirm(`Delete station ${s.name} and all its messages?`)) return;
    if (await run(() => api('DELETE', `/v1/stations/${enc(s.name)}`))) navigate('/stations');
  };
  return (
    <form class="form" onSubmit={(e) => void submit(e)}>
      <p class="muted">
        Partitions ({s.partitions.length}) and storage ({s.config.storage}) are fixed at creation.
      </p>
      <fieldset disabled={!editable}>
        <label>
          retention: max age (hours){' '}
          <input type="number" step="any" min="0" value={maxAgeH} onInput={(e) => setMaxAgeH((e.target as HTMLInputElement).value)} />
        </label>
        <label>
          retention: max messages per partition{' '}
          <input type="number" min="1" value={maxMessages} onInput={(e) => setMaxMessages((e.target as HTMLInputElement).value)} />
        </label>
        <label class="check">
          <input type="checkbox" checked={dlsEnabled} onChange={(e) => setDlsEnabled((e.target as HTMLInputElement).checked)} /> dead-letter
          after max deliveries
        </label>
        <label>
          max deliveries{' '}
          <input
            type="number"
            min="1"
            max="1000"
            value={maxDeliveries}
            onInput={(e) => setMaxDeliveries((e.target as HTMLInputElement).value)}
          />
        </label>
        <label>
          ack deadline (ms){' '}
          <input type="number" min="100" value={maxAckTimeMs} onInput={(e) => setMaxAckTimeMs((e.target as HTMLInputElement).value)} />
        </label>
        <ErrorBox error={error} />
        {saved && <p class="ok">Saved.</p>}
        <div class="row">
          <button type="submit" disabled={busy}>
            Save
          </button>
          <button type="button" class="danger" onClick={() => void del()} disabled={busy}>
            Delete station
          </button>
        </div>
      </fieldset>
      {!editable && <p class="muted">You may not change this station.</p>}
    </form>
  );
}
