import { PostgresSaver } from "@langchain/langgraph-checkpoint-postgres";
import type { Database } from "./database.js";
import { withMigrationLock } from "./migrations/index.js";

/**
 * PostgresSaver on Keel's pool. `setup()` (LangGraph's own migrations) runs under the same advisory lock as
 * Keel's, so processes starting together do not race on it.
 */
export async function createCheckpointer<S extends PostgresSaver = PostgresSaver>(
  db: Database,
  make: (pool: Database["pool"]) => S = (pool) => new PostgresSaver(pool) as S,
): Promise<S> {
  const saver = make(db.pool);
  await withMigrationLock(db.pool, () => saver.setup());
  return saver;
}
