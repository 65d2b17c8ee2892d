import { useEffect, useState } from 'preact/hooks';
import { api, enc, fmtTime } from '../api.js';
import { ErrorBox, useAction, useAuthMode, useCan } from '../ui.js';

export interface ApiMessage {
  partition: number;
  offset: number;
  timestamp: number;
  key?: string;
  headers: Record<string, string>;
  value?: string;
  valueBase64?: string;
}

export type ViewMode = 'json' | 'text' | 'hex';

export function bytesOf(m: ApiMessage): Uint8Array {
  if (m.valueBase64 !== undefined) return Uint8Array.from(atob(m.valueBase64), (c) => c.charCodeAt(0));
  return new TextEncoder().encode(m.value ?? '');
}

/** The value as JSON (pretty, when it parses), text (UTF-8, replacement characters for bad bytes) or hex. */
export function renderValue(m: ApiMessage, mode: ViewMode): string {
  const bytes = bytesOf(m);
  if (mode === 'hex') {
    const lines: string[] = [];
    for (let i = 0; i < bytes.length; i += 16) {
      const row = Array.from(bytes.subarray(i, i + 16));
      lines.push(
        `${i.toString(16).padStart(8, '0')}  ${row
          .map((b) => b.toString(16).padStart(2, '0'))
          .join(' ')
          .padEnd(48)}  ${row.map((b) => (b >= 32 && b < 127 ? String.fromCharCode(b) : '.')).join('')}`,
      );
    }
    return lines.join('\n');
  }
  const text = new TextDecoder().decode(bytes);
  if (mode === 'json') {
    try {
      return JSON.stringify(JSON.parse(text), null, 2);
    } catch {
      return text;
    }
  }
  return text;
}

export function MessageView(props: { m: ApiMessage; mode: ViewMode }) {
  const { m } = props;
  const headers = Object.entries(m.headers);
  return (
    <div class="message" data-offset={m.offset} data-partition={m.partition}>
      <div class="message-meta">
        <b>
          p{m.partition} · offset {m.offset}
        </b>{' '}
        · {fmtTime(m.timestamp)}{' '}
        {m.key !== undefined && (
          <span>
            · key <code>{m.key}</code>
          </span>
        )}
      </div>
      {headers.length > 0 && (
        <div class="headers">
          {headers.map(([k, v]) => (
            <span class="header">
              <code>{k}</code>: {v}
            </span>
          ))}
        </div>
      )}
      <pre class="value">{renderValue(m, props.mode)}</pre>
    </div>
  );
}

export function ProduceForm(props: { station: string; onProduced?: () => void }) {
  const can = useCan();
  const authMode = useAuthMode();
  const allowed = can('station', 'produce', props.station);
  const [run, error, busy] = useAction();
  const [value, setValue] = useState('');
  const [key, setKey] = useState('');
  const [headers, setHeaders] = useState('');
  const [result, setResult] = useState<string | undefined>();
  if (authMode === 'pending') return null;
  if (!allowed) {
    return (
      <p class="muted" data-testid="produce-denied">
        You may not produce to this station.
      </p>
    );
  }
  const submit = async (e: Event) => {
    e.preventDefault();
    setResult(undefined);
    const hdrs: Record<string, string> = {};
    for (const line of headers.split('\n')) {
      const i = line.indexOf(':');
      if (i > 0) hdrs[line.slice(0, i).trim()] = line.slice(i + 1).trim();
    }
    await run(async () => {
      const res = await api<{ results: ({ partition: number; offset: number } | { error: { code: string; message: string } })[] }>(
        'POST',
        `/v1/stations/${enc(props.station)}/messages`,
        {
          messages: [{ value, ...(key && { key }), ...(Object.keys(hdrs).length > 0 && { headers: hdrs }) }],
        },
      );
      const r = res.results[0]!;
      if ('error' in r) throw Object.assign(new Error(r.error.message), { body: r.error });
      setResult(`stored at partition ${r.partition}, offset ${r.offset}`);
      props.onProduced?.();
    });
  };
  return (
    <form class="form produce" onSubmit={(e) => void submit(e)} data-testid="produce-form">
      <h3>Produce a message</h3>
      <label>
        value <textarea name="value" rows={3} value={value} onInput={(e) => setValue((e.target as HTMLTextAreaElement).value)} />
      </label>
      <div class="row">
        <label>
          key <input name="key" value={key} onInput={(e) => setKey((e.target as HTMLInputElement).value)} />
        </label>
        <label>
          headers (one <code>name: value</code> a line){' '}
          <textarea name="headers" rows={2} value={headers} onInput={(e) => setHeaders((e.target as HTMLTextAreaElement).value)} />
        </label>
      </div>
      <ErrorBox error={error} />
      {result && (
        <p class="ok" data-testid="produce-result">
          {result}
        </p>
      )}
      <button type="submit" disabled={busy}>
        Produce
      </button>
    </form>
  );
}

/** The first offset of `partition` whose timestamp is ≥ `t` (binary search with one-message reads). */
async function offsetAtTime(station: string, partition: number, first: number, next: number, t: number): Promise<number> {
  let lo = first;
  let hi = next; // answer in [lo, hi]; hi = past the end
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    const page = await api<{ messages: ApiMessage[] }>(
      'GET',
      `/v1/stations/${enc(station)}/messages?partition=${partition}&fromOffset=${mid}&limit=1`,
    );
    const m = page.messages[0];
    if (!m) {
      hi = mid;
      continue;
    }
    if (m.timestamp >= t) hi = Math.min(mid, m.offset);
    else lo = m.offset + 1;
  }
  return lo;
}

export function MessageBrowser(props: {
  station: string;
  partitions: { partition: number; firstOffset: number; nextOffset: number }[];
  reload?: number;
}) {
  const can = useCan();
  const authMode = useAuthMode();
  const [partition, setPartition] = useState(0);
  const [fromOffset, setFromOffset] = useState('');
  const [time, setTime] = useState('');
  const [mode, setMode] = useState<ViewMode>('json');
  const [messages, setMessages] = useState<ApiMessage[] | undefined>();
  const [next, setNext] = useState<number | undefined>();
  const [run, error] = useAction();
  const load = (from: number | undefined) =>
    run(async () => {
      const page = await api<{ messages: ApiMessage[]; next?: number }>(
        'GET',
        `/v1/stations/${enc(props.station)}/messages?partition=${partition}&limit=50&encoding=base64${from !== undefined ? `&fromOffset=${from}` : ''}`,
      );
      setMessages(page.messages);
      setNext(page.next);
    });
  useEffect(() => {
    if (can('station', 'consume', props.station)) void load(fromOffset ? Number(fromOffset) : undefined);
  }, [props.station, partition, props.reload, authMode]);
  if (authMode === 'pending') return <p class="muted">Loading…</p>;
  if (!can('station', 'consume', props.station)) return <p class="muted">You may not read this station's messages.</p>;
  const p = props.partitions.find((x) => x.partition === partition);
  const go = async (e: Event) => {
    e.preventDefault();
    if (time && p) {
      await run(async () => {
        const o = await offsetAtTime(props.station, partition, p.firstOffset, p.nextOffset, new Date(time).getTime());
        setFromOffset(String(o));
        const page = await api<{ messages: ApiMessage[]; next?: number }>(
          'GET',
          `/v1/stations/${enc(props.station)}/messages?partition=${partition}&limit=50&encoding=base64&fromOffset=${o}`,
        );
        setMessages(page.messages);
        setNext(page.next);
      });
    } else void load(fromOffset ? Number(fromOffset) : undefined);
  };
  return (
    <div class="browser" data-testid="message-browser">
      <h3>Messages</h3>
      <form class="row filters" onSubmit={(e) => void go(e)}>
        <label>
          partition
          <select value={partition} onChange={(e) => setPartition(Number((e.target as HTMLSelectElement).value))}>
            {(props.partitions.length ? props.partitions : [{ partition: 0 }]).map((x) => (
              <option value={x.partition}>{x.partition}</option>
            ))}
          </select>
        </label>
        <label>
          from offset{' '}
          <input
            type="number"
            min="0"
            value={fromOffset}
            onInput={(e) => setFromOffset((e.target as HTMLInputElement).value)}
            placeholder={p ? String(p.firstOffset) : ''}
          />
        </label>
        <label>
          or from time <input type="datetime-local" step="1" value={time} onInput={(e) => setTime((e.target as HTMLInputElement).value)} />
        </label>
        <button type="submit">Go</button>
        <span class="modes">
          {(['json', 'text', 'hex'] as const).map((m) => (
            <label class="check">
              <input type="radio" name="mode" checked={mode === m} onChange={() => setMode(m)} /> {m}
            </label>
          ))}
        </span>
      </form>
      <ErrorBox error={error} />
      {messages && messages.length === 0 && <p class="muted">No messages from there.</p>}
      {messages?.map((m) => (
        <MessageView m={m} mode={mode} />
      ))}
      {next !== undefined && messages && messages.length > 0 && (
        <button class="link" onClick={() => void load(next)}>
          Next page →
        </button>
      )}
    </div>
  );
}
