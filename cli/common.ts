import { openDatabase, type Database } from "../checkpoints/database.js";
import type { KeelConfig } from "../core/config.js";
import { exitCodeFor, InputError, isKeelError } from "../core/errors.js";
import { prepareQueue } from "../runtime/queue.js";

/** Prints an error the one way every command does: a line on stderr, and with --json an object on stdout. */
export function reportError(error: unknown, json: boolean | undefined): number {
  const name = (error as Error).name ?? "Error";
  const message = (error as Error).message ?? String(error);
  if (json) {
    const code = isKeelError(error) ? error.code : "internal";
    console.log(JSON.stringify({ status: "error", error: { code, name, message } }, null, 2));
  }
  console.error(
    isKeelError(error) ? `keel: ${name}: ${message}` : `keel: ${(error as Error).stack ?? message}`,
  );
  return exitCodeFor(error);
}

/** Opens the database (and the queue's schema), runs `work`, closes it; errors become exit codes. */
export async function withDatabase(
  config: KeelConfig,
  json: boolean | undefined,
  work: (db: Database) => Promise<number>,
): Promise<number> {
  let db: Database | undefined;
  try {
    db = await openDatabase(config);
    await prepareQueue(db.pool);
    return await work(db);
  } catch (error) {
    return reportError(error, json);
  } finally {
    await db?.close();
  }
}

export function printJson(value: unknown): void {
  console.log(JSON.stringify(value, null, 2));
}

/** Parses a date or a relative time ("2h", "30m", "7d") for --since. */
export function parseSince(value: string): Date {
  const relative = /^(\d+)\s*([smhd])$/.exec(value.trim());
  if (relative) {
    const unit = { s: 1e3, m: 6e4, h: 36e5, d: 864e5 }[relative[2] as "s" | "m" | "h" | "d"];
    return new Date(Date.now() - Number(relative[1]) * unit);
  }
  const date = new Date(value);
  if (Number.isNaN(date.getTime()))
    throw new InputError(
      `expected a date (2026-11-01T10:00Z) or an age like 30m, 2h, 7d`,
      "invalid_argument",
    );
  return date;
}
