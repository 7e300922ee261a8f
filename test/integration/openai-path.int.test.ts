import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { json, keel } from "../helpers/cli.js";
import { startScriptedServer } from "../fakes/openai-server.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  await t?.drop();
});

const modelEnv = (url: string) => ({
  DATABASE_URL: t.url,
  OPENAI_BASE_URL: url,
  OPENAI_API_KEY: "test-key",
  KEEL_MODEL: "scripted-model",
});

describe("a real model over HTTP (scripted OpenAI-compatible server on loopback)", () => {
  it("plans with submit_plan, drives a sub-agent's tools and synthesizes", async () => {
    const server = await startScriptedServer([
      {
        tool_calls: [
          {
            name: "submit_plan",
            arguments: {
              tasks: [{ task_id: "t1", type: "research", objective: "Find the on-call stipend" }],
            },
          },
        ],
      },
      { tool_calls: [{ name: "search_kb", arguments: { query: "on-call stipend" } }] },
      { content: "On-call engineers get 400 USD per week." },
      { content: "The stipend is 400 USD per week [t1]." },
    ]);
    try {
      const result = await keel(["run", "--json", "What is the on-call stipend?"], modelEnv(server.url));
      expect(result.code).toBe(0);
      expect(result.stderr).not.toContain("offline model");
      expect(json(result)).toMatchObject({
        status: "done",
        final_answer: "The stipend is 400 USD per week [t1].",
      });
      expect(server.requests.map((r) => r.model)).toEqual(Array(4).fill("scripted-model"));
      expect(server.requests[0]!.tools!.map((x) => x.function.name)).toEqual(["submit_plan"]);
      expect(server.requests[1]!.tools!.map((x) => x.function.name)).toEqual(["search_kb", "read_document"]);
      // The tool really ran: its result went back to the model on the next turn.
      expect(JSON.stringify(server.requests[2]!.messages)).toContain("policy-on-call");
    } finally {
      await server.close();
    }
  });

  it("rejects a reply that is not a valid plan with a named error and exit code 2", async () => {
    const server = await startScriptedServer([
      {
        tool_calls: [
          { name: "submit_plan", arguments: { tasks: [{ task_id: "t1", type: "finance", objective: "x" }] } },
        ],
      },
    ]);
    const count = async () =>
      (await t.db.pool.query<{ n: number }>("select count(*)::int as n from tool_calls")).rows[0]!.n;
    const before = await count();
    try {
      const result = await keel(["run", "--json", "Audit the books"], modelEnv(server.url));
      expect(result.code).toBe(2);
      expect(json(result)).toMatchObject({
        status: "error",
        error: { name: "PlanError", code: "invalid_plan" },
      });
      expect(result.stderr).toMatch(
        /PlanError: The plan was rejected: task "t1" asks for unknown agent type "finance"/,
      );
      expect(await count()).toBe(before);
    } finally {
      await server.close();
    }
  });

  it("reports a model server that fails as a failure (exit 1), not as bad input", async () => {
    const server = await startScriptedServer([]);
    try {
      const result = await keel(["run", "--json", "Anything"], {
        ...modelEnv(server.url),
        KEEL_MAX_RETRIES: "0",
      });
      expect(result.code).toBe(1);
      expect(json(result)).toMatchObject({
        status: "failed",
        error: { reason: "error", message: expect.stringMatching(/script exhausted/) },
      });
    } finally {
      await server.close();
    }
  });
});
