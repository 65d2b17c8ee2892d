/**
 * The `transforms:` list of a connector declaration, validated with zod. Each step is
 * `{ type, name?, … }`; paths of issues read `transforms[2].fields[0]`. What the shapes cannot say
 * (a JSONata expression that does not compile, `route` on a sink) is checked by {@link checkTransforms}.
 */
import { z } from 'zod';
import { FIELD_PATH_RE } from './paths.js';

const FieldPath = z
  .string()
  .min(1, 'must not be empty')
  .max(512)
  .regex(FIELD_PATH_RE, 'a field path: dot-separated names, none empty (a.b.c)');
const HeaderName = z.string().min(1, 'must not be empty').max(256);
/** A secret reference: never a literal, so the declaration stays storable and showable. */
const SecretReference = z
  .string()
  .regex(/^\$\{(env|file):[^}]+\}$/, 'must be a reference such as ${env:MASK_KEY} or ${file:/run/secrets/mask-key} (never the key itself)');

const Scalar = z.union([z.string(), z.number(), z.boolean(), z.null()]);

const OPERATORS = ['eq', 'ne', 'in', 'exists', 'gt', 'gte', 'lt', 'lte', 'matches'] as const;

const Comparison = z.strictObject({
  /** A field of the (JSON) value. */
  field: FieldPath.optional(),
  /** A header. */
  header: HeaderName.optional(),
  /** The message's key. */
  key: z.literal(true).optional(),
  eq: Scalar.optional(),
  ne: Scalar.optional(),
  in: z.array(Scalar).min(1).max(10_000).optional(),
  exists: z.boolean().optional(),
  gt: z.union([z.number(), z.string()]).optional(),
  gte: z.union([z.number(), z.string()]).optional(),
  lt: z.union([z.number(), z.string()]).optional(),
  lte: z.union([z.number(), z.string()]).optional(),
  /** A regular expression (JavaScript syntax) the value's text must match. */
  matches: z
    .string()
    .max(1000)
    .refine((s) => {
      try {
        new RegExp(s);
        return true;
      } catch {
        return false;
      }
    }, 'not a valid regular expression')
    .optional(),
});

export type Comparison = z.output<typeof Comparison>;

/** A condition: one comparison on a field, a header or the key, or `all` / `any` / `not` of conditions. */
export type Condition = Comparison | { all: Condition[] } | { any: Condition[] } | { not: Condition };

const ComparisonChecked = Comparison.superRefine((c, ctx) => {
  const subjects = (['field', 'header', 'key'] as const).filter((k) => c[k] !== undefined);
  if (subjects.length !== 1) ctx.addIssue({ code: 'custom', path: [], message: 'names exactly one of field, header or key' });
  const ops = OPERATORS.filter((k) => c[k] !== undefined);
  if (ops.length !== 1) ctx.addIssue({ code: 'custom', path: [], message: `has exactly one operator of ${OPERATORS.join(', ')}` });
});

export const Condition: z.ZodType<Condition> = z.lazy(() =>
  z.union([
    z.strictObject({ all: z.array(Condition).min(1).max(100) }),
    z.strictObject({ any: z.array(Condition).min(1).max(100) }),
    z.strictObject({ not: Condition }),
    ComparisonChecked,
  ]),
);

const base = { name: z.string().min(1).max(128).optional() };

export const FilterStep = z
  .strictObject({ type: z.literal('filter'), ...base, keep: Condition.optional(), drop: Condition.optional() })
  .refine((s) => (s.keep === undefined) !== (s.drop === undefined), {
    message: 'says either keep (a condition the messages kept meet) or drop (one the messages dropped meet)',
  });
export const DropStep = z.strictObject({ type: z.literal('drop'), ...base, fields: z.array(FieldPath).min(1).max(1000) });
export const KeepStep = z.strictObject({ type: z.literal('keep'), ...base, fields: z.array(FieldPath).min(1).max(1000) });
export const RenameStep = z.strictObject({
  type: z.literal('rename'),
  ...base,
  /** `{ from: to }`, applied in order. */
  fields: z.record(FieldPath, FieldPath).refine((r) => Object.keys(r).length > 0, 'names at least one field'),
});
export const MaskStep = z.strictObject({
  type: z.literal('mask'),
  ...base,
  fields: z.array(FieldPath).min(1).max(1000),
  /**
   * `replace`: the value becomes `replacement` (default "****"). `hash`: the value becomes the hex
   * SHA-256 of its text (a string's UTF-8, anything else's JSON), or HMAC-SHA-256 with `key` when given
   * (without a key, a small domain such as phone numbers can be reversed by trying every value).
   */
  method: z.enum(['replace', 'hash']).default('replace'),
  replacement: z.string().max(1000).default('****'),
  key: SecretReference.optional(),
});
export const SetHeaderStep = z
  .strictObject({
    type: z.literal('setHeader'),
    ...base,
    header: HeaderName,
    value: z.string().max(65_536).optional(),
    from: FieldPath.optional(),
  })
  .refine((s) => (s.value === undefined) !== (s.from === undefined), {
    message: 'says either value (a fixed text) or from (a field of the value)',
  });
export const RouteStep = z.strictObject({
  type: z.literal('route'),
  ...base,
  field: FieldPath,
  /** The station's name: `{value}` is replaced by the field's text. Default `{value}`. */
  station: z.string().min(1).max(256).default('{value}'),
  /** A message without the field: `keep` it on the connector's station (default), or `fail` it. */
  missing: z.enum(['keep', 'fail']).default('keep'),
});
export const FlattenStep = z.strictObject({
  type: z.literal('flatten'),
  ...base,
  separator: z.string().min(1).max(8).default('.'),
  /** Only this field's object (default: the whole value). */
  field: FieldPath.optional(),
});
export const TimestampStep = z.strictObject({
  type: z.literal('timestamp'),
  ...base,
  field: FieldPath,
  /** What the field holds: epoch ms, epoch seconds, or an ISO-8601 / RFC-2822 text; `auto` tells by type and size. */
  from: z.enum(['auto', 'epochMillis', 'epochSeconds', 'iso']).default('auto'),
  to: z.enum(['epochMillis', 'epochSeconds', 'iso']),
});
export const MapStep = z.strictObject({
  type: z.literal('map'),
  ...base,
  /** A JSONata expression over the value; `$headers`, `$key`, `$timestamp` are bound. Its result becomes the value (JSON); no result drops the message. */
  expression: z.string().min(1).max(65_536),
});
export const PluginStep = z.strictObject({
  type: z.literal('plugin'),
  ...base,
  plugin: z.string().min(1),
  config: z.record(z.string(), z.unknown()).default({}),
});

export const TransformStep = z.discriminatedUnion('type', [
  FilterStep,
  DropStep,
  KeepStep,
  RenameStep,
  MaskStep,
  SetHeaderStep,
  RouteStep,
  FlattenStep,
  TimestampStep,
  MapStep,
  PluginStep,
]);
/** One step with its defaults applied. */
export type TransformStep = z.output<typeof TransformStep>;
export type TransformStepInput = z.input<typeof TransformStep>;

/** A connector's `transforms:`. */
export const TransformsConfig = z.array(TransformStep).max(64, 'at most 64 steps');
export type TransformsConfig = z.output<typeof TransformsConfig>;

/** The label a step carries in errors and dead letters: its `name`, else its type (`plugin:<name>` for a plugin). */
export function stepLabel(step: TransformStep): string {
  return step.name ?? (step.type === 'plugin' ? `plugin:${step.plugin}` : step.type);
}
