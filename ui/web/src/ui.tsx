/** Shared pieces: the router, the auth context, a virtualised list, a chart, error display. */
import { createContext } from 'preact';
import type { ComponentChildren } from 'preact';
import { useContext, useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import type uPlot from 'uplot';
import { ApiError } from './api.js';
import type { ApiErrorBody } from './api.js';
import { allows } from './auth.js';
import type { Action, AuthState, Resource } from './auth.js';

// ---- routing (History API; the server answers index.html for every client route) ----
const listeners = new Set<() => void>();
export function navigate(to: string): void {
  if (to === location.pathname + location.search) return;
  history.pushState(null, '', to);
  for (const f of listeners) f();
}
addEventListener('popstate', () => {
  for (const f of listeners) f();
});
export function usePath(): string {
  const [path, setPath] = useState(location.pathname);
  useEffect(() => {
    const f = () => setPath(location.pathname);
    listeners.add(f);
    return () => listeners.delete(f);
  }, []);
  return path;
}
export function Link(props: { href: string; children: ComponentChildren; class?: string }) {
  return (
    <a
      href={props.href}
      class={props.class}
      onClick={(e) => {
        if (e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
        e.preventDefault();
        navigate(props.href);
      }}
    >
      {props.children}
    </a>
  );
}

// ---- auth ----
export const AuthContext = createContext<AuthState>({ mode: 'off' });
/** `pending` until whoami answered: pages that depend on grants wait for it (their effects list it). */
export function useAuthMode(): AuthState['mode'] {
  return useContext(AuthContext).mode;
}
export function useCan(): (resource: Resource, action: Action, name?: string) => boolean {
  const state = useContext(AuthContext);
  return (resource, action, name) => allows(state, resource, action, name);
}

// ---- errors ----
export function errorOf(err: unknown): ApiErrorBody {
  if (err instanceof ApiError) return err.body;
  return { code: 'ERROR', message: err instanceof Error ? err.message : String(err) };
}
export function ErrorBox(props: { error: ApiErrorBody | undefined }) {
  const e = props.error;
  if (!e) return null;
  return (
    <div class="error" role="alert">
      <b>{e.code}</b> {e.message}
      {e.issues && e.issues.length > 0 && (
        <ul>
          {e.issues.map((i) => (
            <li>
              <code>{i.path || '(body)'}</code>: {i.message}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

/** Runs an async action, keeping its error and whether it runs. */
export function useAction(): [
  (f: () => Promise<unknown>) => Promise<boolean>,
  ApiErrorBody | undefined,
  boolean,
  (e: ApiErrorBody | undefined) => void,
] {
  const [error, setError] = useState<ApiErrorBody | undefined>();
  const [busy, setBusy] = useState(false);
  const run = async (f: () => Promise<unknown>): Promise<boolean> => {
    setBusy(true);
    setError(undefined);
    try {
      await f();
      return true;
    } catch (err) {
      setError(errorOf(err));
      return false;
    } finally {
      setBusy(false);
    }
  };
  return [run, error, busy, setError];
}

// ---- a virtualised list: only the rows in view (plus a margin) are in the DOM ----
export function VirtualList<T>(props: {
  total: number;
  rowHeight: number;
  height: number;
  /** The row at `index`, or undefined while its page loads. */
  row: (index: number) => T | undefined;
  render: (item: T | undefined, index: number) => ComponentChildren;
  /** Called with the visible range (to load the pages it needs). */
  onRange?: (from: number, to: number) => void;
  testId?: string;
}) {
  const [top, setTop] = useState(0);
  const overscan = 10;
  const from = Math.max(0, Math.floor(top / props.rowHeight) - overscan);
  const to = Math.min(props.total, Math.ceil((top + props.height) / props.rowHeight) + overscan);
  useEffect(() => {
    if (to > from) props.onRange?.(from, to);
  }, [from, to, props.total]);
  const rows: ComponentChildren[] = [];
  for (let i = from; i < to; i++) {
    rows.push(
      <div class="vrow" style={{ top: `${i * props.rowHeight}px`, height: `${props.rowHeight}px` }} key={i}>
        {props.render(props.row(i), i)}
      </div>,
    );
  }
  return (
    <div
      class="vlist"
      style={{ height: `${props.height}px` }}
      onScroll={(e) => setTop((e.currentTarget as HTMLElement).scrollTop)}
      data-testid={props.testId}
    >
      <div style={{ height: `${props.total * props.rowHeight}px`, position: 'relative' }}>{rows}</div>
    </div>
  );
}

// ---- a time-series chart (uPlot) ----
export interface Series {
  label: string;
  color: string;
}
/** uPlot, loaded on first use: pages without a chart (the stations list) do not wait for it. */
let uplotModule: Promise<typeof uPlot> | undefined;
function loadUPlot(): Promise<typeof uPlot> {
  uplotModule ??= Promise.all([import('uplot'), import('uplot/dist/uPlot.min.css')]).then(([m]) => m.default);
  return uplotModule;
}

export function Chart(props: { title: string; series: Series[]; data: number[][]; height?: number }) {
  const el = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const data = useRef(props.data);
  data.current = props.data;
  useLayoutEffect(() => {
    let gone = false;
    void loadUPlot().then((UPlot) => {
      if (gone || !el.current) return;
      const opts: uPlot.Options = {
        width: Math.max(300, el.current.clientWidth || 600),
        height: props.height ?? 160,
        series: [{}, ...props.series.map((s) => ({ label: s.label, stroke: s.color, width: 2 }))],
        axes: [{}, { size: 60 }],
        // The last five minutes, ending now (snapshots come only when something changed).
        scales: { x: { time: true, range: (_u, _min, max) => [Math.max(max, Date.now() / 1000) - 300, Math.max(max, Date.now() / 1000)] } },
        legend: { show: true },
      };
      plot.current = new UPlot(opts, data.current as uPlot.AlignedData, el.current);
    });
    return () => {
      gone = true;
      plot.current?.destroy();
      plot.current = null;
    };
  }, [props.series.map((s) => s.label).join()]);
  useEffect(() => {
    plot.current?.setData(props.data as uPlot.AlignedData);
  }, [props.data]);
  return (
    <div class="chart">
      <div class="chart-title">{props.title}</div>
      <div ref={el} style={{ minHeight: `${(props.height ?? 160) + 40}px` }} />
    </div>
  );
}

/** Keeps the last `max` points of several series, appended at each snapshot. */
export function useHistory(max = 150): [number[][], (t: number, values: number[]) => void] {
  const [data, setData] = useState<number[][]>([[]]);
  const push = (t: number, values: number[]) =>
    setData((d) => {
      const next = [d[0] ?? [], ...values.map((_, i) => d[i + 1] ?? [])].map((col, i) =>
        [...col, i === 0 ? t / 1000 : values[i - 1]!].slice(-max),
      );
      return next;
    });
  return [data, push];
}

export function Stat(props: { label: string; value: ComponentChildren; testId?: string }) {
  return (
    <div class="stat" data-testid={props.testId}>
      <div class="stat-value">{props.value}</div>
      <div class="stat-label">{props.label}</div>
    </div>
  );
}

export function Modal(props: { title: string; onClose: () => void; children: ComponentChildren }) {
  return (
    <div class="modal-back" onClick={props.onClose}>
      <div class="modal" role="dialog" aria-label={props.title} onClick={(e) => e.stopPropagation()}>
        <div class="modal-head">
          <h3>{props.title}</h3>
          <button class="link" onClick={props.onClose} aria-label="close">
            ✕
          </button>
        </div>
        {props.children}
      </div>
    </div>
  );
}
