import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_POLICY } from "../../policy/file.js";
import { createKey } from "../../server/access.js";
import { createApp } from "../../server/app.js";
import { json, keel } from "../helpers/cli.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";
import { killServers, post, startServe, type Served } from "../helpers/serve.js";

// A database of its own: once a key exists, every server on the database asks for keys.
let t: TestDatabase;
let served: Served;
const keys: Record<string, string> = {};
const as = (who: string) => ({ authorization: `Bearer ${keys[who]}` });
const get = (route: string, who?: string) =>
  fetch(`${served.url}${route}`, { headers: who ? { "x-api-key": keys[who]! } : {} });

async function waitFor<T>(probe: () => Promise<T | undefined>, what: string): Promise<T> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

beforeAll(async () => {
  t = await createTestDatabase();
  const env = { DATABASE_URL: t.url };
  for (const [name, role] of [
    ["ada", "admin"],
    ["alice", "submitter"],
    ["sam", "submitter"],
    ["rita", "reviewer"],
    // sam's second key, as a reviewer: still sam, so still the submitter of sam's requests.
    ["sam-as-reviewer", "reviewer"],
  ] as const) {
    const result = await keel(
      ["keys", "create", "--role", role, "--name", name === "sam-as-reviewer" ? "sam" : name, "--json"],
      env,
    );
    expect(result.code, result.stderr).toBe(0);
    keys[name] = json<{ key: string }>(result).key;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "keel-access-"));
  const policyFile = path.join(dir, "keel.policy.yaml");
  fs.writeFileSync(policyFile, "tools: { send_message: { decision: sync_approval } }\n");
  served = await startServe([], { ...env, KEEL_POLICY_FILE: policyFile });
});
afterAll(async () => {
  await served?.stop();
  killServers();
  await t?.drop();
});

describe("API keys", () => {
  it("prints a key once and stores only its hash", async () => {
    const { rows } = await t.db.pool.query<{ key_hash: string; name: string }>(
      "select key_hash, name from api_keys",
    );
    expect(rows).toHaveLength(5);
    for (const key of Object.values(keys)) {
      expect(key).toMatch(/^keel_[0-9a-f]{8}_[A-Za-z0-9_-]{32}$/);
      expect(JSON.stringify(rows)).not.toContain(key);
    }
    const list = await keel(["keys", "list"], { DATABASE_URL: t.url });
    expect(list.stdout).toMatch(/submitter\s+alice/);
    for (const key of Object.values(keys)) expect(list.stdout).not.toContain(key);
  });

  it("answers a request without a key, or with a wrong one, 401 with what to do; the public routes stay open", async () => {
    expect(served.output()).toMatch(/5 API keys in force/);
    const none = await post(`${served.url}/tasks`, { request: "Calculate 2 + 2" });
    expect(none.status).toBe(401);
    expect(await none.json()).toMatchObject({
      code: "unauthenticated",
      message: expect.stringMatching(/Authorization: Bearer <key>.*keel keys create/),
      request_id: expect.any(String),
    });
    const wrong = await fetch(`${served.url}/tasks`, {
      headers: { authorization: "Bearer keel_00000000_nope" },
    });
    expect(wrong.status).toBe(401);
    expect(await wrong.json()).toMatchObject({ message: expect.stringMatching(/not valid/) });
    for (const open of ["/ok", "/info", "/healthz", "/readyz", "/openapi.json"])
      expect((await fetch(`${served.url}${open}`)).status, open).toBe(200);
    const doc = (await (await fetch(`${served.url}/openapi.json`)).json()) as {
      components: { securitySchemes: Record<string, unknown> };
    };
    expect(Object.keys(doc.components.securitySchemes).sort()).toEqual(["apiKey", "bearer"]);
  });

  it("answers a role that may not 403, naming the role needed", async () => {
    const reviewerSubmits = await post(`${served.url}/tasks`, { request: "Calculate 2 + 2" }, as("rita"));
    expect(reviewerSubmits.status).toBe(403);
    expect(await reviewerSubmits.json()).toMatchObject({
      code: "forbidden",
      message: expect.stringMatching(/A reviewer key may not submit tasks.*submitter or admin/),
    });
    const submitterLists = await get("/approvals", "alice");
    expect(submitterLists.status).toBe(403);
    const submitterMetrics = await get("/metrics", "alice");
    expect(submitterMetrics.status).toBe(403);
  });

  it("refuses a revoked key", async () => {
    const { key, row } = await createKey(t.db.pool, { role: "admin", name: "temp", createdBy: "test" });
    expect((await fetch(`${served.url}/tasks`, { headers: { "x-api-key": key } })).status).toBe(200);
    const revoked = await keel(["keys", "revoke", row.id], { DATABASE_URL: t.url });
    expect(revoked.code, revoked.stderr).toBe(0);
    expect((await fetch(`${served.url}/tasks`, { headers: { "x-api-key": key } })).status).toBe(401);
  });

  it("names what was wrong with a bad key request and stores nothing", async () => {
    const badRole = await keel(["keys", "create", "--role", "root"], { DATABASE_URL: t.url });
    expect(badRole.code).not.toBe(0);
    expect(badRole.stderr).toMatch(/Allowed choices are submitter, reviewer, admin/);
    const badName = await keel(["keys", "create", "--role", "admin", "--name", "two words"], {
      DATABASE_URL: t.url,
    });
    expect(badName.code).toBe(2);
    expect(badName.stderr).toMatch(/"two words" is not one/);
    const unknown = await keel(["keys", "revoke", "ffffffff"], { DATABASE_URL: t.url });
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toMatch(/No key has id "ffffffff"/);
    const { rows } = await t.db.pool.query("select 1 from api_keys where name in ('two words')");
    expect(rows).toEqual([]);
  });
});

describe("tenancy", () => {
  it("shows a submitter its own tasks only: another's task is 404 to read, trace, follow or cancel", async () => {
    const created = await post(`${served.url}/tasks`, { request: "Calculate 3 * 3" }, as("alice"));
    expect(created.status).toBe(201);
    const { task_id } = (await created.json()) as { task_id: string };
    const { rows } = await t.db.pool.query("select submitted_by from tasks where id = $1", [task_id]);
    expect(rows).toEqual([{ submitted_by: "alice" }]);
    expect((await get(`/tasks/${task_id}`, "alice")).status).toBe(200);
    for (const route of [`/tasks/${task_id}`, `/tasks/${task_id}/trace`, `/tasks/${task_id}/events`]) {
      const response = await get(route, "sam");
      expect(response.status, route).toBe(404);
      expect(await response.json()).toMatchObject({ code: "not_found" });
    }
    expect((await post(`${served.url}/tasks/${task_id}/cancel`, {}, as("sam"))).status).toBe(404);
    const samList = (await (await get("/tasks", "sam")).json()) as { tasks: { task_id: string }[] };
    expect(samList.tasks.map((x) => x.task_id)).not.toContain(task_id);
    const adminList = (await (await get("/tasks", "ada")).json()) as { tasks: { task_id: string }[] };
    expect(adminList.tasks.map((x) => x.task_id)).toContain(task_id);
    // A reviewer reads any task, to judge what it decides on.
    expect((await get(`/tasks/${task_id}`, "rita")).status).toBe(200);
  });
});

describe("tenancy of threads", () => {
  it("keeps a submitter's threads its own; reviewers read them but make none", async () => {
    const created = await post(`${served.url}/threads`, { metadata: { about: "mine" } }, as("alice"));
    expect(created.status).toBe(200);
    const { thread_id } = (await created.json()) as { thread_id: string };
    expect((await get(`/threads/${thread_id}`, "alice")).status).toBe(200);
    expect((await get(`/threads/${thread_id}`, "sam")).status).toBe(404);
    const patch = await fetch(`${served.url}/threads/${thread_id}`, {
      method: "PATCH",
      headers: { "content-type": "application/json", ...as("sam") },
      body: JSON.stringify({ metadata: { about: "sam's now" } }),
    });
    expect(patch.status).toBe(404);
    const deleted = await fetch(`${served.url}/threads/${thread_id}`, {
      method: "DELETE",
      headers: as("sam"),
    });
    expect(deleted.status).toBe(404);
    // Taking its id is refused too, without saying whose it is.
    const taken = await post(`${served.url}/threads`, { thread_id, if_exists: "do_nothing" }, as("sam"));
    expect(taken.status).toBe(409);
    const search = async (who: string) =>
      (
        (await (await post(`${served.url}/threads/search`, {}, as(who))).json()) as { thread_id: string }[]
      ).map((x) => x.thread_id);
    expect(await search("sam")).not.toContain(thread_id);
    expect(await search("alice")).toContain(thread_id);
    expect((await get(`/threads/${thread_id}`, "rita")).status).toBe(200);
    expect((await post(`${served.url}/threads`, {}, as("rita"))).status).toBe(403);
    const { rows } = await t.db.pool.query("select metadata from threads where thread_id = $1", [thread_id]);
    expect(rows).toEqual([{ metadata: { about: "mine" } }]);
  });
});

describe("tenancy of the store", () => {
  it("holds a submitter to namespaces that start with its identity", async () => {
    const put = (who: string, namespace: string[]) =>
      fetch(`${served.url}/store/items`, {
        method: "PUT",
        headers: { "content-type": "application/json", ...as(who) },
        body: JSON.stringify({ namespace, key: "k", value: { v: 1 } }),
      });
    expect((await put("alice", ["alice", "memories"])).status).toBe(204);
    const other = await put("alice", ["sam", "memories"]);
    expect(other.status).toBe(403);
    expect(await other.json()).toMatchObject({ message: expect.stringMatching(/use \["alice", …\]/) });
    expect((await get("/store/items?namespace=alice.memories&key=k", "sam")).status).toBe(403);
    expect((await get("/store/items?namespace=alice.memories&key=k", "alice")).status).toBe(200);
    // A submitter's search without a prefix is held to its own namespaces.
    const search = (await (await post(`${served.url}/store/items/search`, {}, as("sam"))).json()) as {
      items: unknown[];
    };
    expect(search.items).toEqual([]);
    expect((await put("rita", ["rita"])).status).toBe(403);
    expect((await get("/store/items?namespace=alice.memories&key=k", "rita")).status).toBe(200);
  });
});

describe("a sync approval over HTTP", () => {
  it("refuses the submitter's own approval, needs the typed confirmation, and records the reviewer", async () => {
    const created = await post(
      `${served.url}/tasks`,
      { request: "Email oncall@harbor.example that the pager test is at noon" },
      as("sam"),
    );
    expect(created.status).toBe(201);
    const { task_id } = (await created.json()) as { task_id: string };
    type Approval = { approval_id: string; task_id: string; mode: string; confirm: string };
    const approval = await waitFor(async () => {
      const { approvals } = (await (await get("/approvals", "rita")).json()) as { approvals: Approval[] };
      return approvals.find((a) => a.task_id === task_id);
    }, "the approval");
    expect(approval).toMatchObject({ mode: "sync", confirm: "send_message" });
    const url = `${served.url}/approvals/${approval.approval_id}/approve`;
    const self = await post(url, { confirm: "send_message" }, as("sam-as-reviewer"));
    expect(self.status).toBe(409);
    expect(await self.json()).toMatchObject({
      message: expect.stringMatching(/needs a reviewer other than the submitter \(sam\)/),
    });
    const unconfirmed = await post(url, {}, as("rita"));
    expect(unconfirmed.status).toBe(400);
    expect(await unconfirmed.json()).toMatchObject({
      message: expect.stringMatching(/"confirm": "send_message"/),
    });
    const approved = await post(url, { confirm: "send_message" }, as("rita"));
    expect(approved.status).toBe(200);
    expect(await approved.json()).toMatchObject({ status: "approved", reviewer: "rita" });
    await waitFor(async () => {
      const { task } = (await (await get(`/tasks/${task_id}`, "sam")).json()) as { task: { status: string } };
      return task.status === "done" ? true : undefined;
    }, "the task to finish");
    const { rows } = await t.db.pool.query("select approved_by from outbox where thread_id = $1", [task_id]);
    expect(rows).toEqual([{ approved_by: "rita" }]);
  });
});

describe("metrics", () => {
  it("serves Prometheus text to an admin: requests by status, queue depth, process figures", async () => {
    const response = await get("/metrics", "ada");
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^text\/plain/);
    const text = await response.text();
    expect(text).toMatch(/^# TYPE keel_tasks gauge$/m);
    expect(text).toMatch(/^keel_tasks\{status="done"\} [1-9]\d*$/m);
    expect(text).toMatch(/^keel_tasks_finished_total\{status="done"\} [1-9]\d*$/m);
    expect(text).toMatch(/^keel_task_duration_seconds\{quantile="0.95"\} \d/m);
    expect(text).toMatch(/^keel_tool_calls_last_hour\{tool="send_message",status="ok"\} 1$/m);
    expect(text).toMatch(/^keel_process_resident_memory_bytes \d+/m);
  });
});

describe("binding beyond loopback", () => {
  it("is allowed once keys exist, and then every request needs one", async () => {
    const wide = await startServe(["--host", "127.0.0.2", "--no-worker"], { DATABASE_URL: t.url });
    try {
      expect((await fetch(`${wide.url}/tasks`)).status).toBe(401);
      expect(
        (await fetch(`${wide.url}/tasks`, { headers: { authorization: `Bearer ${keys.ada}` } })).status,
      ).toBe(200);
    } finally {
      expect(await wide.stop()).toBe(0);
    }
  });
});

describe("limits (in process)", () => {
  const app = (overrides: Partial<typeof t.config.server>, pool: pg.Pool = t.db.pool) =>
    createApp({
      pool,
      config: { ...t.config, server: { ...t.config.server, ...overrides } },
      policy: DEFAULT_POLICY,
      version: "0.0.0",
      workerRunning: () => false,
    });

  it("answers a key over its rate 429 with Retry-After", async () => {
    const { key } = await createKey(t.db.pool, { role: "admin", name: "busy", createdBy: "test" });
    const limited = app({ rateLimitPerMinute: 3 });
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++)
      statuses.push((await limited.request("/tasks", { headers: { "x-api-key": key } })).status);
    expect(statuses).toEqual([200, 200, 200, 429]);
    const refused = await limited.request("/tasks", { headers: { "x-api-key": key } });
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(await refused.json()).toMatchObject({
      code: "rate_limited",
      message: expect.stringMatching(/more than 3 requests in a minute; retry in \d+ s/),
    });
  });

  it("answers a request that outlasts the request timeout 504 with what to do", async () => {
    // A database that answers slowly: each query waits 300 ms; the limit is 100 ms.
    const slow = new Proxy(t.db.pool, {
      get(target, prop, receiver) {
        if (prop !== "query") return Reflect.get(target, prop, receiver) as unknown;
        return async (text: string, values?: unknown[]) => {
          await new Promise((r) => setTimeout(r, 300));
          return target.query(text, values);
        };
      },
    });
    const response = await app({ requestTimeoutMs: 100, rateLimitPerMinute: 0 }, slow).request("/tasks", {
      headers: { "x-api-key": keys.ada! },
    });
    expect(response.status).toBe(504);
    expect(await response.json()).toMatchObject({
      code: "timeout",
      message: expect.stringMatching(/longer than 100 ms.*read the task before retrying/),
    });
    // The slow queries still running finish before the database goes away.
    await new Promise((r) => setTimeout(r, 1500));
  });

  it("allows the configured browser origins only", async () => {
    const withCors = app({ corsOrigins: ["https://inbox.example"] });
    const preflight = (origin: string) =>
      withCors.request("/tasks", {
        method: "OPTIONS",
        headers: {
          origin,
          "access-control-request-method": "POST",
          "access-control-request-headers": "x-api-key, content-type",
        },
      });
    const allowed = await preflight("https://inbox.example");
    expect(allowed.status).toBe(204);
    expect(allowed.headers.get("access-control-allow-origin")).toBe("https://inbox.example");
    expect(allowed.headers.get("access-control-allow-headers")?.toLowerCase()).toContain("x-api-key");
    const other = await preflight("https://evil.example");
    expect(other.headers.get("access-control-allow-origin")).toBeNull();
  });
});
