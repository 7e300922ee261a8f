import { closest, distance } from "fastest-levenshtein";

/**
 * The valid name a misspelling most likely meant (`send_mesage` -> `send_message`), or undefined when none is
 * close enough to suggest: within a third of the name's length, at least two edits.
 */
export function closestName(name: string, valid: readonly string[]): string | undefined {
  if (valid.length === 0) return undefined;
  const near = closest(name, [...valid]);
  return distance(name, near) <= Math.max(2, Math.floor(name.length / 3)) ? near : undefined;
}
