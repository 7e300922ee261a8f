import { Client } from "@langchain/langgraph-sdk";
import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SAMPLES } from "../../evals/samples.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";

const PORT = 2025;
const root = path.resolve(import.meta.dirname, "../..");
let t: TestDatabase;
let server: ChildProcess | undefined;
let log = "";
const client = new Client({ apiUrl: `http://127.0.0.1:${PORT}` });

async function waitUntilUp(deadline: number): Promise<void> {
  while (Date.now() < deadline) {
    if (server?.exitCode !== null && server?.exitCode !== undefined)
      throw new Error(`langgraph dev exited:\n${log}`);
    try {
      const response = await fetch(`http://127.0.0.1:${PORT}/ok`);
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`langgraph dev did not start in time:\n${log}`);
}

beforeAll(async () => {
  t = await createTestDatabase();
  server = spawn(
    path.join(root, "node_modules/.bin/langgraphjs"),
    ["dev", "--port", String(PORT), "--host", "127.0.0.1", "--no-browser"],
    {
      cwd: root,
      env: {
        PATH: process.env.PATH ?? "",
        HOME: process.env.HOME ?? "",
        LANGGRAPH_CLI_NO_ANALYTICS: "1",
        DATABASE_URL: t.url,
      },
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  server.stdout!.on("data", (d: Buffer) => (log += d.toString()));
  server.stderr!.on("data", (d: Buffer) => (log += d.toString()));
  await waitUntilUp(Date.now() + 110_000);
}, 120_000);

afterAll(async () => {
  if (server?.pid) {
    process.kill(-server.pid, "SIGTERM");
    await new Promise((r) => (server!.exitCode !== null ? r(null) : server!.once("exit", r)));
  }
  await t?.drop();
});

describe("langgraph dev serves Keel's graphs", () => {
  it("lists every graph with input and output schemas for Studio's forms", async () => {
    const assistants = await client.assistants.search({ limit: 20 });
    const byGraph = Object.fromEntries(assistants.map((a) => [a.graph_id, a.assistant_id]));
    expect(Object.keys(byGraph).sort()).toEqual([
      "code",
      "communication",
      "data",
      "orchestrator",
      "research",
    ]);
    const orchestrator = await client.assistants.getSchemas(byGraph.orchestrator!);
    expect(orchestrator.input_schema).toMatchObject({ properties: { request: { type: "string" } } });
    expect(orchestrator.output_schema).toMatchObject({
      properties: { final_answer: expect.any(Object), results: expect.any(Object) },
    });
    for (const id of ["research", "code", "data", "communication"]) {
      const schemas = await client.assistants.getSchemas(byGraph[id]!);
      expect(schemas.input_schema).toMatchObject({ properties: { task: { type: "object" } } });
      expect(schemas.output_schema).toMatchObject({ properties: { result: expect.any(Object) } });
    }
    const subgraphs = await client.assistants.getSubgraphs(byGraph.orchestrator!);
    expect(Object.keys(subgraphs).sort()).toEqual(["code", "communication", "data", "research"]);
  });

  it("runs a request to its approval interrupt, resumes with a command and reads the history", async () => {
    const thread = await client.threads.create();
    const request = SAMPLES.find((s) => s.id === 7)!.request;
    await client.runs.wait(thread.thread_id, "orchestrator", { input: { request } });
    const waiting = await client.threads.getState(thread.thread_id);
    const interrupts = waiting.tasks.flatMap((task) => task.interrupts);
    expect(interrupts).toHaveLength(1);
    expect(interrupts[0]!.value).toMatchObject({
      kind: "approval",
      agent: "communication",
      actions: [{ tool: "send_message" }],
    });

    const values = (await client.runs.wait(thread.thread_id, "orchestrator", {
      command: { resume: { action: "approve", reviewer: "studio" } },
    })) as { final_answer?: string };
    expect(values.final_answer).toMatch(/Sent ".*" to all-staff@harbor.example/);
    const history = await client.threads.getHistory(thread.thread_id, { limit: 50 });
    expect(history.length).toBeGreaterThan(5);
    const { rows } = await t.db.pool.query("select approved_by from outbox where thread_id = $1", [
      thread.thread_id,
    ]);
    expect(rows).toEqual([{ approved_by: "studio" }]);
  });
});
