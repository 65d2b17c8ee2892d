/**
 * A form generated from a plugin's config JSON Schema (GET /v1/connector-plugins/:name → config):
 * strings, numbers, booleans, enums as fields; secrets (`writeOnly` / `x-secret`) as password fields
 * that never show a stored value; anything nested as a JSON text field.
 */
import { useState } from 'preact/hooks';

export interface JsonSchema {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  enum?: unknown[];
  default?: unknown;
  description?: string;
  writeOnly?: boolean;
  'x-secret'?: boolean;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  minimum?: number;
  maximum?: number;
}

function typeOf(s: JsonSchema): string {
  const t = Array.isArray(s.type) ? s.type.find((x) => x !== 'null') : s.type;
  if (t) return t;
  const alt = (s.anyOf ?? s.oneOf ?? []).find((x) => x.type !== 'null');
  return alt ? typeOf(alt) : 'json';
}

export function isSecret(s: JsonSchema): boolean {
  return s.writeOnly === true || s['x-secret'] === true || (s.anyOf ?? s.oneOf ?? []).some(isSecret);
}

export function ConfigForm(props: { schema: JsonSchema; value: Record<string, unknown>; onChange: (v: Record<string, unknown>) => void }) {
  const props_ = props.schema.properties ?? {};
  const required = new Set(props.schema.required ?? []);
  const set = (k: string, v: unknown) => {
    const next = { ...props.value };
    if (v === undefined || v === '') delete next[k];
    else next[k] = v;
    props.onChange(next);
  };
  return (
    <div class="config-form">
      {Object.entries(props_).map(([k, s]) => (
        <Field name={k} schema={s} required={required.has(k)} value={props.value[k]} onChange={(v) => set(k, v)} />
      ))}
    </div>
  );
}

function Field(props: { name: string; schema: JsonSchema; required: boolean; value: unknown; onChange: (v: unknown) => void }) {
  const { name, schema: s } = props;
  const t = typeOf(s);
  const [jsonText, setJsonText] = useState(props.value === undefined ? '' : JSON.stringify(props.value));
  const [jsonError, setJsonError] = useState<string | undefined>();
  const label = (
    <span>
      {name}
      {props.required ? ' *' : ''} {s.default !== undefined && <span class="muted">(default {JSON.stringify(s.default)})</span>}
    </span>
  );
  const help = s.description ? <small class="muted">{s.description}</small> : null;
  if (s.enum) {
    return (
      <label>
        {label}
        <select
          name={`config.${name}`}
          value={props.value === undefined ? '' : String(props.value)}
          onChange={(e) => props.onChange((e.target as HTMLSelectElement).value || undefined)}
        >
          <option value="">{s.default !== undefined ? `(default: ${String(s.default)})` : '—'}</option>
          {s.enum.map((v) => (
            <option value={String(v)}>{String(v)}</option>
          ))}
        </select>
        {help}
      </label>
    );
  }
  if (t === 'boolean') {
    const checked = props.value === undefined ? s.default === true : props.value === true;
    return (
      <label class="check">
        <input
          type="checkbox"
          name={`config.${name}`}
          checked={checked}
          onChange={(e) => props.onChange((e.target as HTMLInputElement).checked)}
        />{' '}
        {label}
        {help}
      </label>
    );
  }
  if (t === 'string') {
    return (
      <label>
        {label}
        <input
          name={`config.${name}`}
          type={isSecret(s) ? 'password' : 'text'}
          autocomplete={isSecret(s) ? 'new-password' : 'off'}
          required={props.required && s.default === undefined}
          value={typeof props.value === 'string' ? props.value : ''}
          onInput={(e) => props.onChange((e.target as HTMLInputElement).value)}
        />
        {help}
      </label>
    );
  }
  if (t === 'number' || t === 'integer') {
    return (
      <label>
        {label}
        <input
          name={`config.${name}`}
          type="number"
          step={t === 'integer' ? '1' : 'any'}
          min={s.minimum}
          max={s.maximum}
          required={props.required && s.default === undefined}
          value={typeof props.value === 'number' ? String(props.value) : ''}
          onInput={(e) => {
            const v = (e.target as HTMLInputElement).value;
            props.onChange(v === '' ? undefined : Number(v));
          }}
        />
        {help}
      </label>
    );
  }
  return (
    <label>
      {label} <span class="muted">(JSON)</span>
      <textarea
        name={`config.${name}`}
        rows={3}
        value={jsonText}
        onInput={(e) => {
          const text = (e.target as HTMLTextAreaElement).value;
          setJsonText(text);
          if (text.trim() === '') {
            setJsonError(undefined);
            props.onChange(undefined);
            return;
          }
          try {
            props.onChange(JSON.parse(text));
            setJsonError(undefined);
          } catch (err) {
            setJsonError((err as Error).message);
          }
        }}
      />
      {jsonError && <small class="error">{jsonError}</small>}
      {help}
    </label>
  );
}
