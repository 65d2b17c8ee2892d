/**
 * Field paths: `a.b.c` names the field `c` of the object at `b` of the object at `a`; a segment that is
 * a number indexes an array. Operations work on a parsed JSON value in place.
 */

/** A path as written in config: dot-separated segments, none empty. */
export const FIELD_PATH_RE = /^[^.]+(\.[^.]+)*$/;

export type Path = readonly string[];

export function parsePath(path: string): Path {
  return path.split('.');
}

type Container = Record<string, unknown> | unknown[];

function isContainer(v: unknown): v is Container {
  return typeof v === 'object' && v !== null;
}

function child(v: unknown, seg: string): unknown {
  if (!isContainer(v)) return undefined;
  if (Array.isArray(v)) {
    const i = Number(seg);
    return Number.isInteger(i) && i >= 0 ? v[i] : undefined;
  }
  return Object.hasOwn(v, seg) ? v[seg] : undefined;
}

/** The value at `path`, or undefined when any segment is missing. */
export function getPath(root: unknown, path: Path): unknown {
  let v = root;
  for (const seg of path) {
    v = child(v, seg);
    if (v === undefined) return undefined;
  }
  return v;
}

/** Whether the value at `path` exists (a `null` there exists). */
export function hasPath(root: unknown, path: Path): boolean {
  return getPath(root, path) !== undefined;
}

/**
 * Sets the value at `path`, making the objects on the way when missing. Returns false (and changes
 * nothing) when a segment on the way holds something that is not an object or array.
 */
export function setPath(root: unknown, path: Path, value: unknown): boolean {
  if (!isContainer(root) || path.length === 0) return false;
  let v: Container = root;
  for (let i = 0; i < path.length - 1; i++) {
    const seg = path[i]!;
    let next = child(v, seg);
    if (next === undefined) {
      if (Array.isArray(v)) return false;
      next = {};
      v[seg] = next;
    }
    if (!isContainer(next)) return false;
    v = next;
  }
  const last = path[path.length - 1]!;
  if (Array.isArray(v)) {
    const i = Number(last);
    if (!Number.isInteger(i) || i < 0) return false;
    v[i] = value;
  } else v[last] = value;
  return true;
}

/** Removes the field at `path`; returns whether something was there. Array elements are not removable (set them instead). */
export function deletePath(root: unknown, path: Path): boolean {
  if (path.length === 0) return false;
  const parent = getPath(root, path.slice(0, -1));
  const last = path[path.length - 1]!;
  if (!isContainer(parent) || Array.isArray(parent) || !Object.hasOwn(parent, last)) return false;
  delete parent[last];
  return true;
}
