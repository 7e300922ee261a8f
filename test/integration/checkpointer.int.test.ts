import { randomUUID } from "node:crypto";
import { deltaChannelHistoryTests, validate } from "@langchain/langgraph-checkpoint-validation";
import type { RunnableConfig } from "@langchain/core/runnables";
import * as vitest from "vitest";
import { KeelSaver, type Fence } from "../../checkpoints/keel-saver.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";

// LangGraph's own conformance suite for checkpointers (@langchain/langgraph-checkpoint-validation), with its opt-in
// delta-channel history tests, run against KeelSaver twice: unfenced (how the API and the CLI read and write), and
// with every write fenced by a task this test holds (how a worker writes).

// The suite is written for vitest's globals; this file gives it them rather than turning them on for every file.
for (const name of ["describe", "it", "expect", "beforeAll", "afterAll", "beforeEach", "afterEach"] as const)
  (globalThis as Record<string, unknown>)[name] ??= vitest[name];

/** Every write fenced by one held task, as a worker's are. */
class HeldSaver extends KeelSaver {
  constructor(
    pool: TestDatabase["db"]["pool"],
    private readonly fence: Fence,
  ) {
    super(pool);
  }
  protected override fenceFor(_config: RunnableConfig): Fence {
    return this.fence;
  }
}

for (const fenced of [false, true]) {
  let t: TestDatabase;
  let fence: Fence;
  const initializer = {
    checkpointerName: fenced ? "KeelSaver (fenced)" : "KeelSaver",
    beforeAllTimeout: 60_000,
    async beforeAll() {
      t = await createTestDatabase();
      const id = randomUUID();
      await t.db.pool.query(
        `insert into tasks (id, root_id, status, fencing_token, request) values ($1, $1, 'running', 7, 'held')`,
        [id],
      );
      fence = { taskId: id, token: "7" };
    },
    async afterAll() {
      await t?.drop();
    },
    createCheckpointer: () => (fenced ? new HeldSaver(t.db.pool, fence) : new KeelSaver(t.db.pool)),
    async destroyCheckpointer() {
      await t.db.pool.query("truncate checkpoints, checkpoint_blobs, checkpoint_writes");
    },
  };
  validate(initializer);
  deltaChannelHistoryTests(initializer);
}
