import type pg from "pg";
import { MIGRATIONS } from "../checkpoints/migrations/index.js";
import { checkpointTablesSize } from "../checkpoints/retention.js";

/** The newest migration this build knows. */
const LATEST_MIGRATION = Math.max(...MIGRATIONS.map((m) => m.id));

/** Whether the database has every migration this build knows (a database ahead of this build is fine). */
export async function migrationsApplied(pool: pg.Pool): Promise<boolean> {
  return pool.query<{ id: number | null }>("select max(id) as id from keel_migrations").then(
    (r) => (r.rows[0]?.id ?? -1) >= LATEST_MIGRATION,
    () => false,
  );
}

/** The checkpoint tables' size on disk, in bytes (what checkpoint retention bounds). */
export async function checkpointBytes(pool: pg.Pool): Promise<number> {
  return (await checkpointTablesSize(pool)).bytes;
}
