import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Client } from "@langchain/langgraph-sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { assistantIdOf } from "../../runtime/registry.js";
import { keel } from "../helpers/cli.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";
import { killServers, startServe, type Served } from "../helpers/serve.js";

// The LangGraph Agent Server API on keel serve, spoken to as users do: with the official SDK's Client.
const KEEL_GRAPHS = ["orchestrator", "research", "code", "data", "communication"];
const USER_GRAPHS = path.resolve(import.meta.dirname, "../fixtures/user-graph/langgraph.json");

let t: TestDatabase;
let served: Served;
let client: Client;

beforeAll(async () => {
  t = await createTestDatabase();
  served = await startServe(["--no-worker"], { DATABASE_URL: t.url });
  client = new Client({ apiUrl: served.url });
});
afterAll(async () => {
  await served?.stop();
  killServers();
  await t?.drop();
});

describe("assistants", () => {
  it("has one assistant per graph of langgraph.json, with LangGraph's ids, found by id or by graph", async () => {
    expect(await (await fetch(`${served.url}/info`)).json()).toMatchObject({ flags: { assistants: true } });
    const all = await client.assistants.search({ limit: 100 });
    expect(all.map((a) => a.graph_id).sort()).toEqual([...KEEL_GRAPHS].sort());
    for (const a of all) {
      expect(a.assistant_id).toBe(assistantIdOf(a.graph_id));
      expect(a).toMatchObject({ name: a.graph_id, version: 1, metadata: { created_by: "system" } });
    }
    // LangGraph's servers derive the same id: uuid v5 of the graph id.
    expect(assistantIdOf("agent")).toBe("fe096781-5601-53d2-b2f6-0d3403f7e9ca");
    expect(await client.assistants.get("orchestrator")).toMatchObject({
      assistant_id: assistantIdOf("orchestrator"),
    });
    expect(await client.assistants.count({ graphId: "research" })).toBe(1);
    const page = await client.assistants.search({ limit: 2, includePagination: true });
    expect(page.assistants).toHaveLength(2);
    expect(page.next).toBe("2");
  });

  it("serves every graph's schemas, drawing and subgraphs", async () => {
    for (const graphId of KEEL_GRAPHS) {
      const schemas = await client.assistants.getSchemas(graphId);
      expect(schemas.graph_id).toBe(graphId);
      expect(schemas.input_schema).toMatchObject({ type: "object" });
      expect(schemas.state_schema).toMatchObject({ type: "object" });
    }
    const orchestrator = await client.assistants.getSchemas("orchestrator");
    expect(orchestrator.input_schema).toMatchObject({ properties: { request: { type: "string" } } });
    const drawing = await client.assistants.getGraph("orchestrator");
    expect(drawing.nodes.map((n) => n.id)).toEqual(
      expect.arrayContaining(["__start__", "planner", "__end__"]),
    );
    const subgraphs = await client.assistants.getSubgraphs("orchestrator");
    expect(Object.keys(subgraphs).sort()).toEqual(["code", "communication", "data", "research"]);
    const deep = await client.assistants.getGraph("orchestrator", { xray: true });
    expect(deep.nodes.length).toBeGreaterThan(drawing.nodes.length);
  });

  it("creates, versions, patches, rolls back and deletes an assistant", async () => {
    const created = await client.assistants.create({
      graphId: "research",
      name: "careful research",
      config: { configurable: { depth: 1 } },
      metadata: { team: "ops" },
    });
    expect(created).toMatchObject({ graph_id: "research", version: 1, name: "careful research" });
    const id = created.assistant_id;
    await expect(client.assistants.create({ graphId: "research", assistantId: id })).rejects.toThrow(/409/);
    expect(
      (await client.assistants.create({ graphId: "research", assistantId: id, ifExists: "do_nothing" }))
        .version,
    ).toBe(1);
    const patched = await client.assistants.update(id, {
      config: { configurable: { depth: 3 } },
      metadata: { owner: "ada" },
    });
    expect(patched).toMatchObject({
      version: 2,
      config: { configurable: { depth: 3 } },
      metadata: { team: "ops", owner: "ada" },
    });
    const versions = await client.assistants.getVersions(id);
    expect(versions.map((v) => v.version)).toEqual([2, 1]);
    const back = await client.assistants.setLatest(id, 1);
    expect(back).toMatchObject({ version: 1, config: { configurable: { depth: 1 } } });
    expect(
      (await client.assistants.search({ metadata: { team: "ops" } })).map((a) => a.assistant_id),
    ).toEqual([id]);
    await client.assistants.delete(id);
    await expect(client.assistants.get(id)).rejects.toThrow(/404/);
    const { rows } = await t.db.pool.query("select 1 from assistant_versions where assistant_id = $1", [id]);
    expect(rows).toEqual([]);
  });

  it.each([
    ["an unknown graph", { graph_id: "nope" }, 404, /no graph "nope".*orchestrator/],
    ["an assistant id that is not a UUID", { graph_id: "code", assistant_id: "x" }, 422, /must be a UUID/],
    ["a bad if_exists", { graph_id: "code", if_exists: "replace" }, 422, /if_exists/],
  ])("answers %s with a named error and stores nothing", async (_what, body, status, message) => {
    const before = await client.assistants.count();
    const response = await fetch(`${served.url}/assistants`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    expect(response.status).toBe(status);
    expect(await response.json()).toMatchObject({ message: expect.stringMatching(message) });
    expect(await client.assistants.count()).toBe(before);
  });

  it("answers an unknown assistant and an unknown version 404 with what to do", async () => {
    const unknown = await fetch(`${served.url}/assistants/not-a-graph`);
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({
      message: expect.stringMatching(/by its uuid or by a graph's id/),
    });
    await expect(client.assistants.setLatest("code", 7)).rejects.toThrow(/404/);
  });
});

describe("threads", () => {
  it("creates, gets, searches, counts, patches and deletes threads", async () => {
    const thread = await client.threads.create({ metadata: { team: "ops" } });
    expect(thread).toMatchObject({ status: "idle", metadata: { team: "ops" }, values: null });
    const { rows } = await t.db.pool.query("select owner from threads where thread_id = $1", [
      thread.thread_id,
    ]);
    expect(rows).toEqual([{ owner: "cli-user" }]);
    expect((await client.threads.get(thread.thread_id)).thread_id).toBe(thread.thread_id);
    await expect(client.threads.create({ threadId: thread.thread_id })).rejects.toThrow(/409/);
    expect(
      (await client.threads.create({ threadId: thread.thread_id, ifExists: "do_nothing" })).metadata,
    ).toEqual({ team: "ops" });
    const other = await client.threads.create({ metadata: { team: "billing" } });
    expect((await client.threads.search({ metadata: { team: "ops" } })).map((x) => x.thread_id)).toEqual([
      thread.thread_id,
    ]);
    expect(
      (
        await client.threads.search({
          ids: [other.thread_id, thread.thread_id],
          sortBy: "created_at",
          sortOrder: "asc",
        })
      ).map((x) => x.thread_id),
    ).toEqual([thread.thread_id, other.thread_id]);
    expect(await client.threads.count({ status: "idle" })).toBeGreaterThanOrEqual(2);
    expect(await client.threads.count({ status: "busy" })).toBe(0);
    const patched = await client.threads.update(thread.thread_id, { metadata: { owner: "ada" } });
    expect(patched.metadata).toEqual({ team: "ops", owner: "ada" });
    await client.threads.delete(other.thread_id);
    await expect(client.threads.get(other.thread_id)).rejects.toThrow(/404/);
  });

  it.each([
    ["a thread id that is not a UUID", { thread_id: "t1" }, 422, /thread_id: must be a UUID/],
    [
      "supersteps without the graph that writes them",
      { supersteps: [{ updates: [{ as_node: "planner", values: {} }] }] },
      400,
      /supersteps needs the graph that writes them: give metadata.graph_id/,
    ],
    [
      "supersteps the graph refuses",
      {
        metadata: { graph_id: "orchestrator" },
        supersteps: [{ updates: [{ as_node: "nowhere", values: {} }] }],
      },
      400,
      /The supersteps were refused, and thread .* was not created: .*nowhere/,
    ],
    [
      "a superstep with no update",
      { metadata: { graph_id: "orchestrator" }, supersteps: [{ updates: [] }] },
      422,
      /updates/,
    ],
    ["metadata that is not an object", { metadata: [1] }, 422, /metadata/],
  ])("answers %s with a named error and stores nothing", async (_what, body, status, message) => {
    const before = await client.threads.count();
    const response = await fetch(`${served.url}/threads`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    expect(response.status).toBe(status);
    expect(await response.json()).toMatchObject({ message: expect.stringMatching(message) });
    expect(await client.threads.count()).toBe(before);
  });
});

describe("the store", () => {
  it("puts, gets, searches, lists namespaces and deletes items, on Postgres", async () => {
    await client.store.putItem(["ada", "memories"], "tea", { likes: "green tea", strength: 3 });
    await client.store.putItem(["ada", "memories"], "coffee", { likes: "espresso", strength: 5 });
    await client.store.putItem(["ada", "notes"], "n1", { text: "call the vendor" });
    const item = await client.store.getItem(["ada", "memories"], "tea");
    expect(item).toMatchObject({ namespace: ["ada", "memories"], key: "tea", value: { likes: "green tea" } });
    expect(item?.createdAt).toEqual(expect.any(String));
    const { rows } = await t.db.pool.query(
      "select count(*)::int as n from langgraph_store.store where namespace_path like 'ada:%'",
    );
    expect(rows).toEqual([{ n: 3 }]);
    const strong = await client.store.searchItems(["ada"], { filter: { strength: 5 } });
    expect(strong.items.map((i) => i.key)).toEqual(["coffee"]);
    const all = await client.store.searchItems(["ada", "memories"], { limit: 10 });
    expect(all.items.map((i) => i.key).sort()).toEqual(["coffee", "tea"]);
    const namespaces = await client.store.listNamespaces({ prefix: ["ada"] });
    expect(namespaces.namespaces.map((n) => n.join(".")).sort()).toEqual(["ada.memories", "ada.notes"]);
    const unscoped = await fetch(`${served.url}/store/items/search`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expect(unscoped.status).toBe(400);
    expect(await unscoped.json()).toMatchObject({
      message: expect.stringMatching(/at least one label to search under/),
    });
    await client.store.deleteItem(["ada", "memories"], "tea");
    expect(await client.store.getItem(["ada", "memories"], "tea")).toBeNull();
  });

  it.each([
    [
      "a namespace label with a period",
      { namespace: ["a.b"], key: "k", value: {} },
      /may not contain a period/,
    ],
    ["an empty namespace", { namespace: [], key: "k", value: {} }, /at least one namespace label/],
    [
      "a namespace label with a colon",
      { namespace: ["a:b"], key: "k", value: {} },
      /may not contain a colon/,
    ],
    ["a value that is not an object", { namespace: ["a"], key: "k", value: 3 }, /value/],
  ])("refuses %s with a named error and stores nothing", async (_what, body, message) => {
    const response = await fetch(`${served.url}/store/items`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    expect(response.status).toBe(422);
    expect(await response.json()).toMatchObject({ message: expect.stringMatching(message) });
    const { rows } = await t.db.pool.query("select 1 from langgraph_store.store where key = 'k'");
    expect(rows).toEqual([]);
  });
});

describe("a user's own langgraph.json", () => {
  it("serves its graphs, not Keel's", async () => {
    const user = await startServe(["--no-worker", "--config", USER_GRAPHS], { DATABASE_URL: t.url });
    try {
      const userClient = new Client({ apiUrl: user.url });
      const echo = await userClient.assistants.get("echo");
      expect(echo.assistant_id).toBe(assistantIdOf("echo"));
      const schemas = await userClient.assistants.getSchemas("echo");
      expect(schemas.input_schema).toMatchObject({ properties: { text: { type: "string" } } });
      expect((await userClient.assistants.getGraph("echo")).nodes.map((n) => n.id)).toContain("shout");
      // A graph declared with Annotation has no runtime schema: its schemas are read from its TypeScript source,
      // its context type is its config and context schema.
      const typed = await userClient.assistants.getSchemas("typed");
      const tone = { type: "string", enum: expect.arrayContaining(["plain", "formal"]) };
      expect(typed.state_schema).toMatchObject({
        type: "object",
        properties: { question: { type: "string" }, tone },
      });
      expect(typed.config_schema).toMatchObject({ type: "object", properties: { tone } });
      expect(typed.context_schema).toEqual(typed.config_schema);
    } finally {
      await user.stop();
    }
  });

  it("refuses a langgraph.json that is missing or lists no graph, saying what to give", async () => {
    const missing = await keel(["serve", "--port", "0", "--config", "nowhere.json"], { DATABASE_URL: t.url });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/There is no .*nowhere\.json.*--config/);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "keel-graphs-"));
    for (const [text, message] of [
      ["{not json", /is not JSON/],
      ['{"graphs": {}}', /lists no graphs: give "graphs"/],
      ['{"graphs": {"a": 3}}', /graph "a" is 3; give ".\/path\/to\/file.ts:export"/],
    ] as const) {
      fs.writeFileSync(path.join(dir, "langgraph.json"), text);
      const result = await keel(["serve", "--port", "0", "--config", path.join(dir, "langgraph.json")], {
        DATABASE_URL: t.url,
      });
      expect(result.code, text).toBe(2);
      expect(result.stderr, text).toMatch(message);
    }
  });
});
