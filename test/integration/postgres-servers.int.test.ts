import { randomUUID } from "node:crypto";
import { StateGraph, StateSchema } from "@langchain/langgraph";
import { deltaChannelHistoryTests, validate } from "@langchain/langgraph-checkpoint-validation";
import * as vitest from "vitest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { openDatabase, type Database } from "../../checkpoints/database.js";
import { KeelSaver } from "../../checkpoints/keel-saver.js";
import { keepLatestCheckpoint } from "../../checkpoints/retention.js";
import { loadConfig } from "../../core/config.js";
import { FencedSaver } from "../../runtime/fence.js";
import { FencedOutError } from "../../runtime/task/rules.js";
import { hasPg15, hasPgBouncer, startPg15, startPgBouncer, type Server } from "../helpers/servers.js";

// Where users run Postgres besides the embedded 18: Debian's PostgreSQL 15, and PgBouncer in transaction mode in
// front of it (a server connection per transaction, so no session state: no prepared statement, session lock or
// setting survives from one transaction to the next). LangGraph's checkpointer suite runs on both, and a graph,
// fenced writes and retention run through the pooler with more clients than it has server connections.

for (const name of ["describe", "it", "expect", "beforeAll", "afterAll", "beforeEach", "afterEach"] as const)
  (globalThis as Record<string, unknown>)[name] ??= vitest[name];

const missing = !hasPg15()
  ? "Debian's PostgreSQL 15 (/usr/lib/postgresql/15/bin) is not installed"
  : !hasPgBouncer()
    ? "PgBouncer (/usr/sbin/pgbouncer) is not installed; .ci/run installs it"
    : undefined;

let pg15: Server | undefined;
let bouncer: Server | undefined;
let direct: Database;
let pooled: Database;

if (missing) {
  describe.skip(`PostgreSQL 15 and PgBouncer: skipped, ${missing}`, () => {
    it("needs them", () => undefined);
  });
} else {
  const open = (url: string, poolSize: number) =>
    openDatabase(loadConfig({ DATABASE_URL: url, KEEL_DB_POOL_SIZE: String(poolSize) }));
  // The servers start in the suite's first beforeAll and stop in its last afterAll.
  let users = 0;
  const start = async () => {
    if (users++ > 0) return;
    pg15 = await startPg15();
    // Two server connections for up to eight clients each: transactions of different clients share them.
    bouncer = await startPgBouncer(pg15.url, 2);
    direct = await open(pg15.url, 4);
    pooled = await open(bouncer.url, 8);
  };
  const stop = async () => {
    if (--users > 0) return;
    await pooled?.close();
    await direct?.close();
    bouncer?.stop();
    pg15?.stop();
  };
  const clean = async () => {
    await direct.pool.query("truncate checkpoints, checkpoint_blobs, checkpoint_writes");
  };
  for (const [where, db] of [
    ["PostgreSQL 15", () => direct],
    ["PgBouncer (transaction mode) before PostgreSQL 15", () => pooled],
  ] as const) {
    const initializer = {
      checkpointerName: `KeelSaver on ${where}`,
      beforeAllTimeout: 60_000,
      beforeAll: start,
      afterAll: stop,
      createCheckpointer: () => new KeelSaver(db().pool),
      destroyCheckpointer: clean,
    };
    validate(initializer);
    deltaChannelHistoryTests(initializer);
  }

  describe("through PgBouncer in transaction mode", () => {
    beforeAll(start, 60_000);
    afterAll(stop);

    const graphOn = (saver: KeelSaver) =>
      new StateGraph(new StateSchema({ n: z.number() }))
        .addNode("a", (s) => ({ n: s.n + 1 }))
        .addNode("b", (s) => ({ n: s.n * 2 }))
        .addEdge("__start__", "a")
        .addEdge("a", "b")
        .addEdge("b", "__end__")
        .compile({ checkpointer: saver });

    it("runs graphs, more at once than the pooler has connections, and keeps their history", async () => {
      const graph = graphOn(new KeelSaver(pooled.pool));
      const threads = Array.from({ length: 12 }, () => randomUUID());
      const out = await Promise.all(
        threads.map((thread_id, i) => graph.invoke({ n: i }, { configurable: { thread_id } })),
      );
      expect(out.map((o) => o.n)).toEqual(threads.map((_, i) => (i + 1) * 2));
      const config = { configurable: { thread_id: threads[3]! } };
      await graph.invoke({ n: 10 }, config);
      expect((await graph.getState(config)).values).toEqual({ n: 22 });
      const history = [];
      for await (const snapshot of graph.getStateHistory(config)) history.push(snapshot.values);
      expect(history.length).toBeGreaterThan(4);
      // Retention through the pooler keeps the state.
      await keepLatestCheckpoint(pooled.pool, threads[3]!);
      expect((await graph.getState(config)).values).toEqual({ n: 22 });
    });

    it("fences writes: a worker whose token moved on is refused", async () => {
      const task = randomUUID();
      await pooled.pool.query(
        "insert into tasks (id, root_id, status, fencing_token, request) values ($1, $1, 'running', 2, 'r')",
        [task],
      );
      const saver = new FencedSaver(pooled.pool);
      saver.tokens.set(task, { taskId: task, token: "2" });
      const graph = graphOn(saver);
      await graph.invoke({ n: 1 }, { configurable: { thread_id: task } });
      await pooled.pool.query("update tasks set fencing_token = 3 where id = $1", [task]);
      await expect(graph.invoke({ n: 5 }, { configurable: { thread_id: task } })).rejects.toThrow(
        FencedOutError,
      );
      expect((await graph.getState({ configurable: { thread_id: task } })).values).toEqual({ n: 4 });
    });
  });
}
