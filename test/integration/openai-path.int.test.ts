import { spawn } from "node:child_process";
import { once } from "node:events";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { json, keel, KEEL_BIN } from "../helpers/cli.js";
import { startScriptedServer, type ScriptedReply } from "../fakes/openai-server.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  await t?.drop();
});

const batchFile = (requests: string[]) => {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "keel-batch-")), "requests.jsonl");
  fs.writeFileSync(file, requests.map((request) => JSON.stringify({ request })).join("\n"));
  return file;
};

const modelEnv = (url: string) => ({
  DATABASE_URL: t.url,
  OPENAI_BASE_URL: url,
  OPENAI_API_KEY: "test-key",
  KEEL_MODEL: "scripted-model",
});

/** `keel run` against the server gives up on the model endpoint: exit 1, a dependency failure with `message`. */
async function expectDependencyFailure(
  url: string,
  extra: Record<string, string>,
  message: RegExp,
): Promise<void> {
  const result = await keel(["run", "--json", "Count the orders"], {
    ...modelEnv(url),
    KEEL_MAX_RETRIES: "0",
    KEEL_DEPENDENCY_RETRY_BASE_MS: "10",
    ...extra,
  });
  expect(result.code).toBe(1);
  expect(json(result)).toMatchObject({
    status: "failed",
    error: { code: "dependency_failed", fault: "system", message: expect.stringMatching(message) },
  });
}

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
      expect(server.requests.map((r) => r.stream)).toEqual(Array(4).fill(true)); // every call streams
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
      const result = await keel(["run", "--json", "Audit the orders"], modelEnv(server.url));
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

  it("gives up on a model server that keeps failing: exit 1, naming the dependency and how often", async () => {
    const server = await startScriptedServer([]);
    try {
      await expectDependencyFailure(
        server.url,
        { KEEL_DEPENDENCY_RETRIES: "2" },
        /model endpoint failed 3 times in a row \(last: 500 script exhausted/,
      );
      expect(server.requests).toHaveLength(3); // the first try and two retries, no more
    } finally {
      await server.close();
    }
  });

  it("bounds a model call whose server never answers: retried, then a named failure, exit 1", async () => {
    const server = await startScriptedServer([{ hang: true }, { hang: true }]);
    try {
      await expectDependencyFailure(
        server.url,
        { KEEL_DEPENDENCY_RETRIES: "1", KEEL_MODEL_TIMEOUT_MS: "300" },
        /model endpoint failed 2 times in a row \(last: the model scripted-model did not answer within 300 ms/,
      );
      expect(server.requests).toHaveLength(2);
    } finally {
      await server.close();
    }
  });

  it("Ctrl-C mid-run ends cleanly, says how to go on, and the next command continues the task", async () => {
    const server = await startScriptedServer([{ hang: true }]);
    try {
      const child = spawn(process.execPath, [KEEL_BIN, "run", "--no-input", "Calculate 12 * 12"], {
        env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...modelEnv(server.url) },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      const exited = once(child, "close");
      const deadline = Date.now() + 30_000;
      while (server.requests.length === 0 && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 50));
      child.kill("SIGINT");
      const [code] = (await exited) as [number | null];
      expect(code, stderr).toBe(130);
      const taskId = /task (\S+) ·/.exec(stdout)![1]!;
      expect(stderr).toContain(`Interrupted. Task ${taskId} is queued, on the default queue`);
      expect(stderr).toMatch(new RegExp(`or continue it here with: (npx )?keel resume ${taskId}`));
      expect(stderr).not.toMatch(/at .*\.ts:\d+/); // no stack trace
      const { rows } = await t.db.pool.query("select status, queue, attempts from tasks where id = $1", [
        taskId,
      ]);
      expect(rows).toEqual([{ status: "queued", queue: "default", attempts: 0 }]);
      // The next command continues it (here with the offline model).
      const resumed = await keel(["resume", taskId.slice(0, 8), "--json"], { DATABASE_URL: t.url });
      expect(resumed.code, resumed.stderr).toBe(0);
      expect(json(resumed)).toMatchObject({ status: "done", final_answer: expect.stringMatching(/144/) });
    } finally {
      await server.close();
    }
  });

  it.each([
    ["an empty reply", { content: "" }, /The model scripted-model returned an empty reply/],
    [
      "a reply cut off at the token limit",
      { content: "On-call engineers get", finish_reason: "length" },
      /The model scripted-model was cut off at its token limit \(4096, KEEL_MAX_TOKENS\)/,
    ],
    [
      "arguments that are not JSON",
      { raw_tool_call: { name: "search_kb", arguments: '{"query": "on-call' } },
      /The model scripted-model called search_kb with arguments that are not JSON/,
    ],
    [
      "a call to a tool that does not exist",
      { tool_calls: [{ name: "delete_everything", arguments: {} }] },
      /The model scripted-model called "delete_everything", which is not a tool/,
    ],
  ] as [string, ScriptedReply, RegExp][])(
    "names %s as a model fault of the model in use",
    async (_what, reply, message) => {
      const plan = {
        tool_calls: [
          {
            name: "submit_plan",
            arguments: {
              tasks: [{ task_id: "t1", type: "research", objective: "Find the on-call stipend" }],
            },
          },
        ],
      };
      const server = await startScriptedServer([plan, reply, { content: "Nothing was found [t1]." }]);
      try {
        const result = await keel(["run", "--json", "What is the on-call stipend?"], {
          ...modelEnv(server.url),
          KEEL_MAX_RETRIES: "0",
        });
        const out = json<{
          status: string;
          children: { agent_task_id: string; status: string; error: unknown }[];
        }>(result);
        expect(out.status).toBe("failed");
        const { rows } = await t.db.pool.query<{
          error_reason: string;
          error_fault: string;
          last_error: string;
        }>(
          "select error_reason, error_fault, last_error from tasks where parent_id = (select id from tasks where request = $1 and parent_id is null order by created_at desc limit 1)",
          ["What is the on-call stipend?"],
        );
        expect(rows).toEqual([
          { error_reason: "model_error", error_fault: "model", last_error: expect.stringMatching(message) },
        ]);
      } finally {
        await server.close();
      }
    },
  );

  const researchPlan: ScriptedReply = {
    tool_calls: [
      {
        name: "submit_plan",
        arguments: { tasks: [{ task_id: "t1", type: "research", objective: "Find the on-call stipend" }] },
      },
    ],
  };
  const lastRoot = async (request: string) =>
    (
      await t.db.pool.query<{ id: string }>(
        "select id from tasks where request = $1 and parent_id is null order by created_at desc limit 1",
        [request],
      )
    ).rows[0]!.id;

  it("times the first token when it arrives, not when the reply ends", async () => {
    const request = "What is the on-call stipend? (timed)";
    const server = await startScriptedServer([
      researchPlan,
      { content: "On-call engineers get 400 USD per week." },
      { content: "The stipend is 400 USD per week [t1].", pauseMs: 600 },
    ]);
    try {
      const result = await keel(["run", "--json", request], modelEnv(server.url));
      expect(result.code, result.stderr).toBe(0);
      const { rows } = await t.db.pool.query<{ first_token_ms: number; duration_ms: number }>(
        "select first_token_ms, duration_ms from trajectory_steps where thread_id = $1 and agent = 'synthesizer' and kind = 'model_call'",
        [await lastRoot(request)],
      );
      expect(rows).toHaveLength(1);
      // The server sent the first chunk at once and the rest 600 ms later.
      expect(rows[0]!.duration_ms).toBeGreaterThanOrEqual(600);
      expect(rows[0]!.first_token_ms).toBeLessThan(rows[0]!.duration_ms - 400);
    } finally {
      await server.close();
    }
  });

  it.each([
    ["ends without a finish reason", "close", /the stream ended without a finish reason/],
    ["loses its connection", "reset", /other side closed|terminated/],
  ] as const)("retries a reply stream that %s, naming the cut", async (_what, cut, detail) => {
    const request = `What is the on-call stipend? (cut ${cut})`;
    const server = await startScriptedServer([
      researchPlan,
      { cut, content: "On-call engineers get 400 USD per week." },
      { content: "On-call engineers get 400 USD per week." },
      { content: "The stipend is 400 USD per week [t1]." },
    ]);
    try {
      const result = await keel(["run", "--json", request], {
        ...modelEnv(server.url),
        KEEL_DEPENDENCY_RETRY_BASE_MS: "10",
      });
      expect(result.code, result.stderr).toBe(0);
      expect(json(result)).toMatchObject({
        status: "done",
        final_answer: "The stipend is 400 USD per week [t1].",
      });
      const { rows } = await t.db.pool.query<{ error: string }>(
        "select error from trajectory_steps where thread_id = $1 and kind = 'retry'",
        [await lastRoot(request)],
      );
      expect(rows).toHaveLength(1);
      expect(rows[0]!.error).toMatch(
        /The model scripted-model's reply stream was cut off mid-reply after 1 chunk/,
      );
      expect(rows[0]!.error).toMatch(detail);
    } finally {
      await server.close();
    }
  });

  it("names a reply stream that keeps being cut once the retries are spent", async () => {
    const server = await startScriptedServer([
      { cut: "close", content: '{"tasks": [' },
      { cut: "close", content: '{"tasks": [' },
    ]);
    try {
      await expectDependencyFailure(
        server.url,
        { KEEL_DEPENDENCY_RETRIES: "1" },
        /model endpoint failed 2 times in a row \(last: The model scripted-model's reply stream was cut off mid-reply/,
      );
    } finally {
      await server.close();
    }
  });

  it("retries transient model errors, waiting at least as long as Retry-After asks", async () => {
    const server = await startScriptedServer([
      { status: 429, retryAfter: 1 },
      { status: 503 },
      {
        tool_calls: [
          {
            name: "submit_plan",
            arguments: { tasks: [{ task_id: "t1", type: "research", objective: "Find the stipend" }] },
          },
        ],
      },
      { content: "Nothing to look up." },
      { content: "No answer [t1]." },
    ]);
    try {
      const result = await keel(["run", "--json", "What is the on-call stipend?"], {
        ...modelEnv(server.url),
        KEEL_DEPENDENCY_RETRY_BASE_MS: "10",
      });
      expect(result.code).toBe(0);
      expect(json(result)).toMatchObject({ status: "done", final_answer: "No answer [t1]." });
      expect(server.arrivals).toHaveLength(5);
      expect(server.arrivals[1]! - server.arrivals[0]!).toBeGreaterThanOrEqual(1000);
    } finally {
      await server.close();
    }
  });

  it("opens the breaker after repeated failures: later calls fail fast without reaching the server", async () => {
    const server = await startScriptedServer([]);
    try {
      const result = await keel(
        ["batch", "--json", "--concurrency", "1", batchFile(["Count the orders", "List the regions"])],
        {
          ...modelEnv(server.url),
          KEEL_MAX_RETRIES: "0",
          KEEL_DEPENDENCY_RETRIES: "0",
          KEEL_BREAKER_THRESHOLD: "1",
          KEEL_BREAKER_HALF_OPEN_SECONDS: "600",
        },
      );
      expect(result.code).toBe(1);
      // The first request's one failure opened the breaker; the second never reached the server.
      expect(server.requests).toHaveLength(1);
      const out = json<{ results: { task_id: string; error_reason: string }[] }>(result);
      expect(out.results.map((r) => r.error_reason)).toEqual(["dependency_failed", "dependency_failed"]);
      const { rows } = await t.db.pool.query<{ last_error: string }>(
        "select last_error from tasks where id = $1",
        [out.results[1]!.task_id],
      );
      expect(rows[0]!.last_error).toMatch(
        /model endpoint is unavailable: its circuit breaker is open after 1 failures in a row/,
      );
    } finally {
      await server.close();
    }
  });
});
