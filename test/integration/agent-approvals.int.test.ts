import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Client } from "@langchain/langgraph-sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createKey } from "../../server/access.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";
import { killServers, startServe, type Served } from "../helpers/serve.js";

// Keel's orchestrator run through the Agent Server API with the official SDK: its stream modes, and its approvals
// decided by resuming the run, which goes through Keel's approvals store (reviewer, policy, second person).

let t: TestDatabase;
let served: Served;
const keys: Record<string, string> = {};
const as = (name: string) => new Client({ apiUrl: served.url, apiKey: keys[name] });

beforeAll(async () => {
  t = await createTestDatabase();
  for (const [name, role, identity] of [
    ["sam", "submitter", "sam"],
    ["zoe", "submitter", "zoe"],
    ["rita", "reviewer", "rita"],
    // sam's reviewer key: still sam, so still the submitter of sam's runs.
    ["sam-reviewer", "reviewer", "sam"],
  ] as const)
    keys[name] = (await createKey(t.db.pool, { role, name: identity, createdBy: "test" })).key;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "keel-approvals-"));
  const policyFile = path.join(dir, "keel.policy.yaml");
  // Webhook notices are async approvals, messages sync ones (a second person, typed confirmation).
  fs.writeFileSync(policyFile, "tools: { send_message: { decision: sync_approval } }\n");
  served = await startServe([], { DATABASE_URL: t.url, KEEL_POLICY_FILE: policyFile });
});
afterAll(async () => {
  if (process.env.DEBUG_SERVE) console.log(served?.output());
  // Graceful shutdown is tested in serve.int.test.ts; here the servers are only stopped.
  killServers();
  await t?.drop();
});

describe("the orchestrator over the Agent Server API", () => {
  it("streams a run in every stream mode, subgraphs included", async () => {
    const thread = await as("sam").threads.create();
    const seen = new Map<string, unknown[]>();
    for await (const { event, data } of as("sam").runs.stream(thread.thread_id, "orchestrator", {
      input: { request: "Calculate the first 15 Fibonacci numbers" },
      streamMode: ["values", "updates", "custom", "messages-tuple", "debug", "tasks", "checkpoints"],
      streamSubgraphs: true,
    })) {
      const mode = event.split("|")[0]!;
      seen.set(mode, [...(seen.get(mode) ?? []), data]);
      if (event.includes("|")) seen.set("subgraph", [...(seen.get("subgraph") ?? []), event]);
    }
    for (const mode of [
      "metadata",
      "values",
      "updates",
      "custom",
      "messages",
      "debug",
      "tasks",
      "checkpoints",
    ])
      expect(seen.has(mode), `no ${mode} event`).toBe(true);
    expect(seen.get("subgraph")!.some((e) => String(e).startsWith("updates|code:"))).toBe(true);
    expect(seen.get("custom")!.some((e) => (e as { keel?: { type?: string } }).keel?.type === "plan")).toBe(
      true,
    );
    const last = seen.get("values")!.at(-1) as { final_answer?: string };
    expect(last.final_answer).toMatch(/377/);
    expect(seen.has("error")).toBe(false);
  });

  it("holds a message for a sync approval: the submitter may not decide it, a second person does", async () => {
    const thread = await as("sam").threads.create();
    await as("sam").runs.wait(thread.thread_id, "orchestrator", {
      input: {
        request: "Email oncall@harbor.example that the database failover drill moves to Friday at 10:00",
      },
    });
    const waiting = await as("sam").threads.get(thread.thread_id);
    expect(waiting.status).toBe("interrupted");
    // Agent Inbox's form of the interrupt, with Keel's request beside it.
    const [interrupt] = Object.values(waiting.interrupts).flat() as { value: Record<string, unknown>[] }[];
    expect(interrupt!.value[0]).toMatchObject({
      action_request: { action: "send_message", args: { to: "oncall@harbor.example" } },
      config: { allow_accept: true, allow_edit: true, allow_respond: true, allow_ignore: true },
      description: expect.stringContaining("send_message"),
      keel: { kind: "approval", agent: "communication" },
    });
    const [run] = await as("sam").runs.list(thread.thread_id);
    const approval = await t.db.pool.query<{ id: string; mode: string }>(
      "select id, mode from approvals where task_id = $1 and status = 'pending'",
      [run!.run_id],
    );
    expect(approval.rows).toEqual([{ id: expect.any(String), mode: "sync" }]);

    const resume = (who: string, value: unknown) =>
      as(who).runs.wait(thread.thread_id, "orchestrator", { command: { resume: value } });
    // A submitter key decides nothing; sam's reviewer key is still sam, the submitter.
    await expect(resume("sam", { action: "approve" })).rejects.toThrow(/403/);
    await expect(resume("sam-reviewer", { action: "approve", confirm: "send_message" })).rejects.toThrow(
      /409.*reviewer other than the submitter \(sam\)/,
    );
    await expect(resume("rita", { action: "approve" })).rejects.toThrow(/confirm.*send_message/);
    // Another submitter cannot even see the thread.
    await expect(as("zoe").threads.get(thread.thread_id)).rejects.toThrow(/404/);
    expect((await as("sam").runs.list(thread.thread_id)).length).toBe(1); // nothing stored by the refusals

    const values = (await resume("rita", { action: "approve", confirm: "send_message" })) as {
      final_answer?: string;
    };
    expect(values.final_answer).toMatch(/oncall@harbor\.example/);
    const decided = await t.db.pool.query("select status, reviewer from approvals where id = $1", [
      approval.rows[0]!.id,
    ]);
    expect(decided.rows).toEqual([{ status: "approved", reviewer: "rita" }]);
    const outbox = await t.db.pool.query("select recipient, approved_by from outbox where thread_id = $1", [
      thread.thread_id,
    ]);
    expect(outbox.rows).toEqual([{ recipient: "oncall@harbor.example", approved_by: "rita" }]);
    const runs = await as("sam").runs.list(thread.thread_id);
    expect(runs.map((r) => r.status)).toEqual(["success", "success"]);
    expect((await as("sam").threads.get(thread.thread_id)).status).toBe("idle");
    // A second decision on the same approval is refused: there is nothing left to resume.
    await expect(resume("rita", { action: "approve", confirm: "send_message" })).rejects.toThrow();
  });

  it("takes Agent Inbox's answers: a response rejects the held message with its text", async () => {
    const thread = await as("sam").threads.create();
    await as("sam").runs.wait(thread.thread_id, "orchestrator", {
      input: {
        request: "Email oncall@harbor.example that the database failover drill moves to Friday at 10:00",
      },
    });
    const values = (await as("rita").runs.wait(thread.thread_id, "orchestrator", {
      command: { resume: [{ type: "response", args: "Not this week" }] },
    })) as { results?: { status: string }[] };
    expect(values.results?.some((r) => r.status === "rejected")).toBe(true);
    const decided = await t.db.pool.query(
      "select status, reviewer, reason from approvals where task_id in (select task_id from runs where thread_id = $1)",
      [thread.thread_id],
    );
    expect(decided.rows).toEqual([{ status: "rejected", reviewer: "rita", reason: "Not this week" }]);
    const outbox = await t.db.pool.query("select 1 from outbox where thread_id = $1", [thread.thread_id]);
    expect(outbox.rowCount).toBe(0);
  });
});
