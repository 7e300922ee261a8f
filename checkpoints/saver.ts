import { PostgresSaver } from "@langchain/langgraph-checkpoint-postgres";
import type { Database } from "./database.js";
import { withMigrationLock } from "./migrations.js";

/**
 * PostgresSaver on Keel's pool. `setup()` (LangGraph's own migrations) runs under the same advisory lock as
 * Keel's, so processes starting together do not race on it.
 */
export async function createCheckpointer(db: Database): Promise<PostgresSaver> {
  const saver = new PostgresSaver(db.pool);
  await withMigrationLock(db.pool, () => saver.setup());
  return saver;
}
