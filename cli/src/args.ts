/** Argument parsers for commander options: a bad value becomes a usage error naming the option. */
import { InvalidArgumentError } from 'commander';

/** An integer in [min, max]. */
export function intArg(min = 0, max = Number.MAX_SAFE_INTEGER): (value: string) => number {
  return (value) => {
    if (!/^-?\d+$/.test(value.trim())) throw new InvalidArgumentError('must be an integer');
    const n = Number(value);
    if (n < min || n > max) throw new InvalidArgumentError(`must be from ${min} to ${max}`);
    return n;
  };
}

/** Repeatable `name=value`, collected into a record. */
export function headerArg(value: string, previous: Record<string, string> | undefined): Record<string, string> {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new InvalidArgumentError('must be name=value');
  return { ...previous, [value.slice(0, eq)]: value.slice(eq + 1) };
}
