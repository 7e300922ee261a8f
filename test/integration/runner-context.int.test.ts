import { AsyncLocalStorageProviderSingleton } from "@langchain/core/singletons";
import { AIMessage } from "@langchain/core/messages";
import { PostgresSaver } from "@langchain/langgraph-checkpoint-postgres";
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_POLICY } from "../../policy/file.js";
import { Runner } from "../../runtime/runner.js";
import { fakeModel, scriptedDeps } from "../fakes/deps.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  await t?.drop();
});

describe("a drive started inside another graph run's context", () => {
  it("still stops at its interrupt as a root run, instead of throwing it to a parent that does not exist", async () => {
    const deps = scriptedDeps(
      t.db.pool,
      t.config.limits,
      {
        planner: fakeModel().structuredResponse({
          tasks: [{ task_id: "t1", type: "communication", objective: "email ops", depends_on: [] }],
        }),
        communication: fakeModel().respondWithTools([
          {
            name: "send_message",
            args: { to: "ops@harbor.example", subject: "Drill", body: "Friday", confidence: 0.95 },
            id: "send",
          },
        ]),
        synthesizer: fakeModel().respond(new AIMessage("done")),
      },
      { policy: DEFAULT_POLICY },
    );
    const runner = await Runner.withSaver(t.db, t.config, (pool) => new PostgresSaver(pool), deps);
    // What a callback that a node's run created sees: that node's config, marked as inside a running graph.
    const ambient = {
      configurable: {
        __pregel_read: () => undefined,
        checkpoint_ns: "communication:abc",
        thread_id: "other",
      },
    };
    const outcome = await AsyncLocalStorageProviderSingleton.runWithConfig(ambient, () =>
      runner.begin("Email ops@harbor.example that the drill is on Friday", randomUUID()),
    );
    expect(outcome.status).toBe("waiting_for_approval");
    expect(outcome.pending).toHaveLength(1);
  });
});
