import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { PostgresStore } from "@langchain/langgraph-checkpoint-postgres/store";
import type pg from "pg";
import { inTransaction } from "../runtime/task/store.js";
import { allow, errors, type Vars } from "./http.js";

/**
 * `POST /internal/truncate`: empties the Agent Server API's tables, as LangGraph's own test server does between
 * suites. Offered only with KEEL_TEST_ENDPOINTS=1 (conformance runs), and only to an admin; Keel's task history
 * (tasks, approvals, the ledger) is never touched.
 */
const Truncate = z
  .object({
    runs: z.boolean().optional(),
    threads: z.boolean().optional(),
    assistants: z.boolean().optional(),
    checkpoint: z.boolean().optional(),
    store: z.boolean().optional(),
  })
  .openapi("Truncate");

export function internalRoutes(app: OpenAPIHono<Vars>, pool: pg.Pool, store?: PostgresStore): void {
  app.openapi(
    createRoute({
      method: "post",
      path: "/internal/truncate",
      summary: "Empty the API's tables (test servers only: KEEL_TEST_ENDPOINTS=1)",
      request: { body: { content: { "application/json": { schema: Truncate } }, required: false } },
      responses: { 200: { description: "Emptied" }, ...errors },
    }),
    async (c) => {
      allow(c, ["admin"], "truncate the API's tables");
      const what = c.req.valid("json") ?? {};
      await inTransaction(pool, async (client) => {
        if (what.runs || what.threads) await client.query("delete from runs");
        if (what.threads) await client.query("delete from crons; delete from threads");
        // The assistants keel serve made for its graphs stay (they are re-made only at start-up).
        if (what.assistants)
          await client.query(
            "delete from assistants where metadata->>'created_by' is distinct from 'system'",
          );
        if (what.checkpoint)
          await client.query(
            "delete from checkpoint_writes; delete from checkpoint_blobs; delete from checkpoints",
          );
      });
      if (what.store && store) await pool.query("delete from langgraph_store.store");
      return c.json({ ok: true }, 200);
    },
  );
}
