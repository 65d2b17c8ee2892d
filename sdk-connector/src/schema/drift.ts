/** How a destination table differs from the columns a schema asks for (what `table.evolve` may apply). */

/** A column as a destination names and types it (the type in the destination's own spelling). */
export interface ColumnLike {
  readonly name: string;
  readonly type: string;
  readonly nullable?: boolean | undefined;
}

/**
 * `added`: wanted columns the table lacks (a compatible new version adds nullable fields: these can be
 * added); `changed`: columns whose type differs (cannot be applied in place); `missing`: table columns
 * the schema no longer has (left alone: they become null for new rows, which needs them nullable);
 * `required`: added columns that are not nullable (an existing table cannot take them without a default).
 */
export interface ColumnDrift {
  readonly added: readonly ColumnLike[];
  readonly changed: readonly { readonly name: string; readonly from: string; readonly to: string }[];
  readonly missing: readonly string[];
  readonly required: readonly string[];
}

/**
 * Compares a table's columns with the wanted ones. Names compare case-insensitively when `foldCase`
 * (Snowflake and Firebolt fold unquoted names), types after trimming and upper-casing.
 */
export function compareColumns(
  existing: readonly ColumnLike[],
  wanted: readonly ColumnLike[],
  opts: { foldCase?: boolean } = {},
): ColumnDrift {
  const key = (n: string): string => (opts.foldCase ? n.toUpperCase() : n);
  const norm = (t: string): string => t.replace(/\s+/g, ' ').trim().toUpperCase();
  const have = new Map(existing.map((c) => [key(c.name), c] as const));
  const want = new Set(wanted.map((c) => key(c.name)));
  const added: ColumnLike[] = [];
  const changed: { name: string; from: string; to: string }[] = [];
  const required: string[] = [];
  for (const c of wanted) {
    const h = have.get(key(c.name));
    if (!h) {
      added.push(c);
      if (c.nullable === false) required.push(c.name);
    } else if (norm(h.type) !== norm(c.type)) changed.push({ name: c.name, from: h.type, to: c.type });
  }
  const missing = existing.filter((c) => !want.has(key(c.name))).map((c) => c.name);
  return { added, changed, missing, required };
}
