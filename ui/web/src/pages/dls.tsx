import { useEffect, useState } from 'preact/hooks';
import { api, enc, fmtNum, fmtTime } from '../api.js';
import { ErrorBox, Modal, useAction, useAuthMode, useCan } from '../ui.js';
import { MessageView } from './messages.js';
import type { ApiMessage, ViewMode } from './messages.js';
import type { GroupInfo } from './station.js';

const H = {
  reason: 'junction-dls-reason',
  code: 'junction-dls-code',
  group: 'junction-dls-group',
  attempts: 'junction-dls-attempts',
  partition: 'junction-dls-partition',
  offset: 'junction-dls-offset',
  timestamp: 'junction-dls-timestamp',
  connector: 'junction-dls-connector',
} as const;

/** Why a message was dead-lettered, in words: poison (deliveries exhausted), schema violation, a connector's error code. */
export function reasonOf(m: ApiMessage): string {
  const h = m.headers;
  const code = h[H.code];
  const connector = h[H.connector];
  if (connector) return `connector ${connector} error${code ? ` ${code}` : ''}${h[H.reason] ? `: ${h[H.reason]}` : ''}`;
  if (code === 'SCHEMA_VIOLATION' || h[H.reason] === 'schema-violation')
    return `schema violation${h[H.reason] && h[H.reason] !== 'schema-violation' ? `: ${h[H.reason]}` : ''}`;
  return h[H.reason] ? `${h[H.reason]}${code ? ` (${code})` : ''}` : (code ?? 'poison');
}

export function DeadLetters(props: { station: string; groups: GroupInfo[]; count: number | undefined }) {
  const can = useCan();
  const authMode = useAuthMode();
  const mayManage = can('station', 'manage', props.station);
  const [letters, setLetters] = useState<ApiMessage[] | undefined>();
  const [selected, setSelected] = useState<Set<number>>(new Set());
  const [mode, setMode] = useState<ViewMode>('json');
  const [journey, setJourney] = useState<ApiMessage | undefined>();
  const [done, setDone] = useState<string | undefined>();
  const [run, error] = useAction();
  const load = () =>
    run(async () => {
      const page = await api<{ messages: ApiMessage[] }>('GET', `/v1/stations/${enc(props.station)}/dls?limit=500&encoding=base64`);
      setLetters(page.messages);
    });
  // Reload when the live count changes (a new dead letter, a purge elsewhere).
  useEffect(() => {
    if (can('station', 'consume', props.station)) void load();
  }, [props.station, props.count, authMode]);
  if (authMode === 'pending') return <p class="muted">Loading…</p>;
  if (!can('station', 'consume', props.station)) return <p class="muted">You may not read this station's dead letters.</p>;

  /** Replays the dead letters at these DLS offsets (contiguous runs in one request each). */
  const resend = (offsets: number[]) =>
    run(async () => {
      const sorted = [...offsets].sort((a, b) => a - b);
      let replayed = 0;
      for (let i = 0; i < sorted.length;) {
        let j = i;
        while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
        const r = await api<{ replayed: number }>('POST', `/v1/stations/${enc(props.station)}/dls/replay`, {
          fromOffset: sorted[i],
          toOffset: sorted[j],
        });
        replayed += r.replayed;
        i = j + 1;
      }
      setDone(`resent ${replayed}`);
      setSelected(new Set());
    });
  const resendAll = () =>
    run(async () => {
      const r = await api<{ replayed: number }>('POST', `/v1/stations/${enc(props.station)}/dls/replay`, {});
      setDone(`resent ${r.replayed}`);
    });
  const purge = () =>
    run(async () => {
      if (!confirm(`Purge every dead letter of ${props.station}?`)) return;
      const r = await api<{ purged: number }>('DELETE', `/v1/stations/${enc(props.station)}/dls`);
      setDone(`purged ${r.purged}`);
      await load();
    });
  const toggle = (o: number) =>
    setSelected((s) => {
      const n = new Set(s);
      if (n.has(o)) n.delete(o);
      else n.add(o);
      return n;
    });
  return (
    <div data-testid="dead-letters">
      <div class="row">
        <h3>Dead letters {props.count !== undefined && <span class="muted">({fmtNum(props.count)})</span>}</h3>
        {mayManage && (
          <span class="actions">
            <button onClick={() => void resend([...selected])} disabled={selected.size === 0}>
              Resend selected ({selected.size})
            </button>
            <button onClick={() => void resendAll()} disabled={!letters?.length}>
              Resend all
            </button>
            <button class="danger" onClick={() => void purge()} disabled={!letters?.length}>
              Purge
            </button>
          </span>
        )}
        <span class="modes">
          {(['json', 'text', 'hex'] as const).map((m) => (
            <label class="check">
              <input type="radio" name="dls-mode" checked={mode === m} onChange={() => setMode(m)} /> {m}
            </label>
          ))}
        </span>
      </div>
      <ErrorBox error={error} />
      {done && (
        <p class="ok" data-testid="dls-result">
          {done}
        </p>
      )}
      {letters && letters.length === 0 && <p class="muted">No dead letters.</p>}
      {letters && letters.length > 0 && (
        <table class="dls">
          <thead>
            <tr>
              {mayManage && <th />}
              <th>reason</th>
              <th>original</th>
              <th>group</th>
              <th>attempts</th>
              <th>dead-lettered at</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {letters.map((m) => (
              <tr data-dls-offset={m.offset}>
                {mayManage && (
                  <td>
                    <input
                      type="checkbox"
                      checked={selected.has(m.offset)}
                      onChange={() => toggle(m.offset)}
                      aria-label={`select dead letter ${m.offset}`}
                    />
                  </td>
                )}
                <td class="reason">{reasonOf(m)}</td>
                <td>
                  p{m.headers[H.partition] ?? '?'} · offset {m.headers[H.offset] ?? '?'}
                </td>
                <td>{m.headers[H.group] ?? '—'}</td>
                <td>{m.headers[H.attempts] ?? '—'}</td>
                <td>{fmtTime(m.timestamp)}</td>
                <td>
                  <button class="link" onClick={() => setJourney(m)}>
                    journey
                  </button>
                  {mayManage && (
                    <button class="link" onClick={() => void resend([m.offset])}>
                      resend
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {journey && <Journey m={journey} groups={props.groups} mode={mode} onClose={() => setJourney(undefined)} />}
    </div>
  );
}

/** produced → delivered to which groups (settled or not, from each group's ack floor) → why it failed. */
function Journey(props: { m: ApiMessage; groups: GroupInfo[]; mode: ViewMode; onClose: () => void }) {
  const h = props.m.headers;
  const partition = Number(h[H.partition] ?? 0);
  const offset = Number(h[H.offset] ?? 0);
  const failedGroup = h[H.group] ?? (h[H.connector] ? `connector.${h[H.connector]}` : undefined);
  return (
    <Modal title="Message journey" onClose={props.onClose}>
      <ol class="journey">
        <li>
          <b>produced</b> to partition {partition} at offset {offset}
          {h[H.timestamp] ? `, ${fmtTime(Number(h[H.timestamp]))}` : ''}
        </li>
        {props.groups.map((g) => {
          const p = g.partitions.find((x) => x.partition === partition);
          const failed = g.group === failedGroup;
          const state = failed
            ? 'dead-lettered'
            : !p
              ? '—'
              : offset < p.ackFloor
                ? 'settled'
                : offset < p.nextOffset
                  ? 'delivered, not settled'
                  : 'not delivered yet';
          return (
            <li class={failed ? 'failed' : ''}>
              <b>group {g.group}</b>: {state}
            </li>
          );
        })}
        {failedGroup && !props.groups.some((g) => g.group === failedGroup) && (
          <li class="failed">
            <b>{failedGroup}</b>: dead-lettered
          </li>
        )}
        <li class="failed">
          <b>failed</b>: {reasonOf(props.m)} after {h[H.attempts] ?? '?'} attempt(s)
        </li>
      </ol>
      <MessageView m={props.m} mode={props.mode} />
    </Modal>
  );
}
