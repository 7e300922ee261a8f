import { Client } from "@langchain/langgraph-sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_POLICY, Policy } from "../../policy/file.js";
import { setStable } from "../../runtime/releases/rollouts.js";
import { specFromConfig } from "../../runtime/releases/spec.js";
import {
  CONFIG_RELEASE,
  createRelease,
  releaseAssistantId,
  type ReleaseRow,
} from "../../runtime/releases/store.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";
import { killServers, post, startServe, type Served } from "../helpers/serve.js";

// keel serve's assistants are versions of releases: every release is an assistant of the orchestrator, each of its
// versions a version of that assistant, and a run on it runs on the release its version in force names. Driven
// through the official SDK, as a user of the Agent Server API would.

const SEND = "Email oncall@harbor.example that the database failover drill moves to Friday at 10:00";

let t: TestDatabase;
let served: Served;
let client: Client;
let careful: ReleaseRow;
let hasty: ReleaseRow;

beforeAll(async () => {
  t = await createTestDatabase();
  const spec = specFromConfig(t.config, DEFAULT_POLICY);
  const make = async (policy: Policy) =>
    (
      await createRelease(t.db.pool, {
        name: "support",
        spec: { ...spec, policy },
        description: "The support desk's agent",
        source: "test",
        createdBy: "test",
      })
    ).release;
  // Version 1 holds a message for a person (the default policy); version 2 sends it on its own.
  careful = await make(DEFAULT_POLICY);
  hasty = await make(Policy.parse({ tools: { send_message: { decision: "autonomous" } } }));
  served = await startServe([], { DATABASE_URL: t.url, KEEL_USER: "ann" });
  client = new Client({ apiUrl: served.url });
}, 120_000);
afterAll(async () => {
  if (process.env.DEBUG_SERVE) console.log(served?.output());
  killServers();
  await t?.drop();
});

/** The task row of a thread's latest run: its status and the release it ran on. */
async function lastRunTask(threadId: string) {
  const [run] = await client.runs.list(threadId, { limit: 1 });
  const { rows } = await t.db.pool.query<{ status: string; release_id: string; release_pinned: boolean }>(
    "select status, release_id, release_pinned from tasks where id = $1",
    [run!.run_id],
  );
  return rows[0]!;
}

describe("releases as assistants", () => {
  it("shows each release as an assistant of the orchestrator, its versions as the assistant's versions", async () => {
    const id = releaseAssistantId("support");
    const assistant = await client.assistants.get(id);
    expect(assistant).toMatchObject({
      graph_id: "orchestrator",
      name: "support",
      description: "The support desk's agent",
      version: 2,
      metadata: { release: "support@2", release_id: hasty.id },
    });
    const versions = await client.assistants.getVersions(id);
    expect(versions.map((v) => [v.version, v.metadata?.release, v.metadata?.release_id])).toEqual([
      [2, "support@2", hasty.id],
      [1, "support@1", careful.id],
    ]);
    const found = await client.assistants.search({ metadata: { release: "support@2" } });
    expect(found.map((a) => a.assistant_id)).toEqual([id]);
  });

  it("runs a run on the release of the assistant's version in force, and records it on the task", async () => {
    const id = releaseAssistantId("support");
    // Back to version 1: the careful release holds the message for a person.
    await client.assistants.setLatest(id, 1);
    const first = await client.threads.create();
    await client.runs.wait(first.thread_id, id, { input: { request: SEND } });
    expect(await lastRunTask(first.thread_id)).toEqual({
      status: "waiting_for_approval",
      release_id: careful.id,
      release_pinned: true,
    });
    // Version 2 in force again: the same request goes out without asking anyone.
    await client.assistants.setLatest(id, 2);
    const second = await client.threads.create();
    await client.runs.wait(second.thread_id, id, { input: { request: SEND } });
    expect(await lastRunTask(second.thread_id)).toEqual({
      status: "done",
      release_id: hasty.id,
      release_pinned: true,
    });
    const { rows } = await t.db.pool.query<{ thread_id: string; recipient: string }>(
      "select thread_id, recipient from outbox",
    );
    expect(rows).toEqual([
      { thread_id: expect.stringContaining(second.thread_id), recipient: "oncall@harbor.example" },
    ]);
    // The task API names the release too.
    const task = (await (
      await fetch(`${served.url}/tasks/${(await client.runs.list(second.thread_id))[0]!.run_id}`)
    ).json()) as { task: { release_id?: string } };
    expect(task.task.release_id).toBe(hasty.id);
  });

  it("lets an assistant of the orchestrator name a release, and a change of it is a new version", async () => {
    const made = await client.assistants.create({
      graphId: "orchestrator",
      name: "support, pinned",
      metadata: { release: "support@1", team: "desk" },
    });
    expect(made.metadata).toEqual({ release: "support@1", release_id: careful.id, team: "desk" });
    const moved = await client.assistants.update(made.assistant_id, { metadata: { release: hasty.id } });
    expect(moved).toMatchObject({
      version: 2,
      metadata: { release: "support@2", release_id: hasty.id, team: "desk" },
    });
    const thread = await client.threads.create();
    await client.runs.wait(thread.thread_id, made.assistant_id, { input: { request: SEND } });
    expect(await lastRunTask(thread.thread_id)).toMatchObject({ status: "done", release_id: hasty.id });
  });

  it("runs the orchestrator's own assistant on the stable release, else on the worker's configuration", async () => {
    const before = await client.threads.create();
    await client.runs.wait(before.thread_id, "orchestrator", { input: { request: "What is 6 times 7?" } });
    const own = await lastRunTask(before.thread_id);
    const { rows } = await t.db.pool.query<{ name: string }>("select name from releases where id = $1", [
      own.release_id,
    ]);
    expect(rows[0]!.name).toBe(CONFIG_RELEASE);
    expect(own.release_pinned).toBe(false);
    // Its AgentTasks are kept in step with the run, as for a task submitted to the runtime.
    const [run] = await client.runs.list(before.thread_id);
    const children = await t.db.pool.query<{ agent_type: string; status: string }>(
      "select agent_type, status from tasks where parent_id = $1",
      [run!.run_id],
    );
    expect(children.rows.length).toBeGreaterThan(0);
    expect(children.rows.every((c) => c.status === "done")).toBe(true);
    await setStable(t.db.pool, careful.id);
    const after = await client.threads.create();
    await client.runs.wait(after.thread_id, "orchestrator", { input: { request: SEND } });
    expect(await lastRunTask(after.thread_id)).toEqual({
      status: "waiting_for_approval",
      release_id: careful.id,
      release_pinned: true,
    });
  });

  it("records no release for a run of a graph that is not the orchestrator", async () => {
    const thread = await client.threads.create();
    await client.runs.wait(thread.thread_id, "code", {
      input: {
        task: {
          task_id: "t1",
          parent_task_id: null,
          type: "code",
          objective: "Calculate 2 + 2",
          context: "",
          constraints: [],
          depends_on: [],
          timeout_seconds: 60,
          idempotency_key: "release-assistants-t1",
        },
      },
    });
    expect(await lastRunTask(thread.thread_id)).toMatchObject({ status: "done", release_id: null });
  });
});

describe("bad release names on assistants", () => {
  it.each([
    [{ graph_id: "orchestrator", metadata: { release: "nope" } }, 404, /There is no release named nope/],
    [{ graph_id: "orchestrator", metadata: { release: "support@9" } }, 404, /has no version 9: it has 1, 2/],
    [{ graph_id: "orchestrator", metadata: { release: 5 } }, 400, /give a release as NAME, NAME@VERSION/],
    [{ graph_id: "research", metadata: { release: "support" } }, 400, /not Keel's orchestrator/],
  ])("refuses %j, storing nothing", async (body, status, message) => {
    const before = await t.db.pool.query("select count(*)::int as n from assistants");
    const answer = await post(`${served.url}/assistants`, body);
    expect(answer.status).toBe(status);
    expect(((await answer.json()) as { message: string }).message).toMatch(message);
    const after = await t.db.pool.query("select count(*)::int as n from assistants");
    expect(after.rows[0].n).toBe(before.rows[0].n);
  });

  it("refuses a run on an assistant whose release id names no release, saying how to fix it", async () => {
    const made = await client.assistants.create({ graphId: "orchestrator" });
    // Only a direct write can leave a dangling id: the API resolves every release it is given.
    await t.db.pool.query(
      `update assistants set metadata = '{"release_id": "00000000-0000-4000-8000-000000000000"}'
        where assistant_id = $1`,
      [made.assistant_id],
    );
    const thread = await client.threads.create();
    const answer = await post(`${served.url}/threads/${thread.thread_id}/runs`, {
      assistant_id: made.assistant_id,
      input: { request: "What is 6 times 7?" },
    });
    expect(answer.status).toBe(400);
    expect(((await answer.json()) as { message: string }).message).toMatch(
      /names release "00000000-0000-4000-8000-000000000000".*no such release.*metadata\.release/,
    );
    expect(await client.runs.list(thread.thread_id)).toEqual([]);
  });
});
