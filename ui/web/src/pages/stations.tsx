import { useEffect, useRef, useState } from 'preact/hooks';
import { api, enc, fmtBytes, fmtNum } from '../api.js';
import { ErrorBox, Link, Modal, VirtualList, errorOf, navigate, useAction, useCan } from '../ui.js';
import type { ApiErrorBody } from '../api.js';

interface Row {
  name: string;
  partitions: number;
  messages: number;
  bytes: number;
  groups: number;
  deadLetters: number;
  createdAt: number;
  health: string;
}
type SortKey = 'name' | 'messages' | 'bytes' | 'partitions' | 'groups' | 'deadLetters' | 'createdAt';

const PAGE = 200;
const ROW_HEIGHT = 34;
const COLUMNS: [SortKey, string][] = [
  ['name', 'station'],
  ['partitions', 'partitions'],
  ['messages', 'messages'],
  ['bytes', 'bytes'],
  ['groups', 'groups'],
  ['deadLetters', 'dead letters'],
];

/** Pages of the server-side listing, loaded as the virtual list scrolls to them. */
export function StationsPage(props: { deadLettersOnly?: boolean }) {
  const can = useCan();
  const [q, setQ] = useState('');
  const [sort, setSort] = useState<SortKey>(props.deadLettersOnly ? 'deadLetters' : 'name');
  const [order, setOrder] = useState<'asc' | 'desc'>(props.deadLettersOnly ? 'desc' : 'asc');
  const [total, setTotal] = useState<number | undefined>();
  const [, setVersion] = useState(0);
  const [error, setError] = useState<ApiErrorBody | undefined>();
  const [creating, setCreating] = useState(false);
  const pages = useRef(new Map<number, Row[] | 'loading'>());
  const query = useRef('');

  const load = async (page: number, key: string) => {
    if (pages.current.has(page)) return;
    pages.current.set(page, 'loading');
    try {
      const res = await api<{ total: number; stations: Row[] }>('GET', `/v1/dashboard/stations?${key}&offset=${page * PAGE}&limit=${PAGE}`);
      if (query.current !== key) return;
      pages.current.set(page, res.stations);
      setTotal(res.total);
      setVersion((v) => v + 1);
    } catch (err) {
      pages.current.delete(page);
      setError(errorOf(err));
    }
  };

  useEffect(() => {
    const key = `q=${enc(q)}&sort=${sort}&order=${order}`;
    query.current = key;
    pages.current = new Map();
    const t = setTimeout(() => void load(0, key), q ? 200 : 0);
    return () => clearTimeout(t);
  }, [q, sort, order]);

  const rowAt = (i: number): Row | undefined => {
    const p = pages.current.get(Math.floor(i / PAGE));
    return Array.isArray(p) ? p[i % PAGE] : undefined;
  };
  const onRange = (from: number, to: number) => {
    for (let p = Math.floor(from / PAGE); p <= Math.floor(Math.max(from, to - 1) / PAGE); p++) void load(p, query.current);
  };
  const header = (key: SortKey, label: string) => (
    <button
      class={`th sort ${sort === key ? 'sorted' : ''}`}
      onClick={() => {
        if (sort === key) setOrder(order === 'asc' ? 'desc' : 'asc');
        else {
          setSort(key);
          setOrder(key === 'name' ? 'asc' : 'desc');
        }
      }}
    >
      {label}
      {sort === key ? (order === 'asc' ? ' ▲' : ' ▼') : ''}
    </button>
  );
  const rows = total ?? 0;
  return (
    <div>
      <div class="page-head">
        <h2>{props.deadLettersOnly ? 'Dead letters' : 'Stations'}</h2>
        {!props.deadLettersOnly && can('station', 'manage') && (
          <button onClick={() => setCreating(true)} data-testid="create-station">
            Create station
          </button>
        )}
      </div>
      {props.deadLettersOnly && <p class="muted">Stations by dead letters held; open one to browse, resend or purge them.</p>}
      <input
        class="search"
        placeholder="Search stations…"
        value={q}
        onInput={(e) => setQ((e.target as HTMLInputElement).value)}
        aria-label="search stations"
      />
      <span class="muted" data-testid="stations-total">
        {' '}
        {total === undefined ? '' : `${fmtNum(total)} stations`}
      </span>
      <ErrorBox error={error} />
      <div class="grid-head grid-stations">{COLUMNS.map(([k, l]) => header(k, l))}</div>
      <VirtualList<Row>
        total={rows}
        rowHeight={ROW_HEIGHT}
        height={Math.min(600, Math.max(ROW_HEIGHT * 3, rows * ROW_HEIGHT))}
        row={rowAt}
        onRange={onRange}
        testId="stations-list"
        render={(r) =>
          !r ? (
            <div class="grid-stations muted">…</div>
          ) : (
            <div class="grid-stations station-row" data-station={r.name}>
              <span>
                <Link href={`/stations/${enc(r.name)}${props.deadLettersOnly ? '/dead-letters' : ''}`}>{r.name}</Link>
                {r.health !== 'ok' && <span class="tag warn">{r.health}</span>}
              </span>
              <span>{r.partitions}</span>
              <span>{fmtNum(r.messages)}</span>
              <span>{fmtBytes(r.bytes)}</span>
              <span>{r.groups}</span>
              <span>{fmtNum(r.deadLetters)}</span>
            </div>
          )
        }
      />
      {creating && <CreateStation onClose={() => setCreating(false)} />}
    </div>
  );
}

function CreateStation(props: { onClose: () => void }) {
  const [run, error, busy] = useAction();
  const [name, setName] = useState('');
  const [partitions, setPartitions] = useState('1');
  const [storage, setStorage] = useState('file');
  const [maxAgeH, setMaxAgeH] = useState('168');
  const [maxDeliveries, setMaxDeliveries] = useState('5');
  const [maxAckTimeMs, setMaxAckTimeMs] = useState('30000');
  const submit = async (e: Event) => {
    e.preventDefault();
    const ok = await run(() =>
      api('POST', '/v1/stations', {
        name,
        partitions: Number(partitions),
        storage,
        retention: { maxAgeMs: Math.round(Number(maxAgeH) * 3600_000) },
        deadLetter: { enabled: true, maxDeliveries: Number(maxDeliveries), maxAckTimeMs: Number(maxAckTimeMs) },
      }),
    );
    if (ok) navigate(`/stations/${enc(name)}`);
  };
  return (
    <Modal title="Create station" onClose={props.onClose}>
      <form onSubmit={(e) => void submit(e)} class="form">
        <label>
          name <input name="name" value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} required />
        </label>
        <label>
          partitions{' '}
          <input
            name="partitions"
            type="number"
            min="1"
            max="1024"
            value={partitions}
            onInput={(e) => setPartitions((e.target as HTMLInputElement).value)}
          />
        </label>
        <label>
          storage
          <select value={storage} onChange={(e) => setStorage((e.target as HTMLSelectElement).value)}>
            <option value="file">file</option>
            <option value="memory">memory</option>
          </select>
        </label>
        <label>
          retention (hours){' '}
          <input type="number" min="0.001" step="any" value={maxAgeH} onInput={(e) => setMaxAgeH((e.target as HTMLInputElement).value)} />
        </label>
        <label>
          max deliveries before dead-lettering{' '}
          <input
            name="maxDeliveries"
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
        <button type="submit" disabled={busy}>
          Create
        </button>
      </form>
    </Modal>
  );
}
