import type pg from "pg";
import { SystemError } from "../../core/errors.js";
import { ACCESS_MIGRATIONS } from "./access.js";
import { CHECKPOINT_MIGRATIONS } from "./checkpoints.js";
import { CONTENT_MIGRATIONS } from "./content.js";
import { OBSERVABILITY_MIGRATIONS } from "./observability.js";
import { RELEASES_MIGRATIONS } from "./releases.js";
import { RUNS_MIGRATIONS } from "./runs.js";
import type { Migration } from "./sql.js";
import { TASKS_MIGRATIONS } from "./tasks.js";
import { TOOLS_MIGRATIONS } from "./tools.js";

export type { Migration } from "./sql.js";

/**
 * Every migration, in the order they run. They live by area — `tasks.ts` (the task runtime), `tools.ts` (what
 * tools leave behind), `observability.ts`, `access.ts` (API keys, assistants, threads), `runs.ts` (the Agent Server API's runs), `checkpoints.ts` (the checkpointer's tables), `releases.ts`, `content.ts` (the demo data) — and run by id, as they always have.
 */
export const MIGRATIONS: readonly Migration[] = [
  ...CONTENT_MIGRATIONS,
  ...TOOLS_MIGRATIONS,
  ...TASKS_MIGRATIONS,
  ...OBSERVABILITY_MIGRATIONS,
  ...ACCESS_MIGRATIONS,
  ...RUNS_MIGRATIONS,
  ...CHECKPOINT_MIGRATIONS,
  ...RELEASES_MIGRATIONS,
].sort((a, b) => a.id - b.id);

// One fixed key so that every Keel process (and LangGraph's setup) migrates one at a time.
const MIGRATION_LOCK_KEY = 0x6b65656c; // "keel"

/**
 * Runs `work` while holding Keel's migration advisory lock, in a transaction of its own on a dedicated connection.
 * A transaction-scoped lock, not a session lock: behind PgBouncer in transaction mode a session lock and its
 * unlock could land on different server connections, and the lock would outlive this process; an open transaction
 * keeps its server connection until it ends, which releases the lock.
 */
export async function withMigrationLock<T>(pool: pg.Pool, work: () => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query("begin");
    try {
      await client.query("select pg_advisory_xact_lock($1)", [MIGRATION_LOCK_KEY]);
      return await work();
    } finally {
      await client.query("commit");
    }
  } finally {
    client.release();
  }
}

/**
 * Applies every migration not yet recorded (up to `through`, when given: a database as an older Keel left it, for
 * upgrade tests). Safe to call from any number of processes at once.
 */
export async function migrate(pool: pg.Pool, options: { through?: number } = {}): Promise<number[]> {
  return withMigrationLock(pool, async () => {
    await pool.query(`create table if not exists keel_migrations (
      id int primary key, name text not null, applied_at timestamptz not null default now())`);
    const done = new Set(
      (await pool.query<{ id: number }>("select id from keel_migrations")).rows.map((r) => r.id),
    );
    const applied: number[] = [];
    for (const migration of MIGRATIONS) {
      if (done.has(migration.id) || migration.id > (options.through ?? Infinity)) continue;
      const client = await pool.connect();
      try {
        await client.query("begin");
        await migration.up(client);
        await client.query("insert into keel_migrations (id, name) values ($1, $2)", [
          migration.id,
          migration.name,
        ]);
        await client.query("commit");
        applied.push(migration.id);
      } catch (error) {
        await client.query("rollback");
        throw new SystemError(
          "database_error",
          `migration ${migration.id} (${migration.name}) failed and was rolled back: ${(error as Error).message}`,
          { cause: error },
        );
      } finally {
        client.release();
      }
    }
    return applied;
  });
}
