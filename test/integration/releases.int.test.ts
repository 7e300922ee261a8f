import { AIMessage, type BaseMessage } from "@langchain/core/messages";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { InputError, NotFoundError } from "../../core/errors.js";
import { DEFAULT_PROMPTS } from "../../graphs/prompts.js";
import { DEFAULT_POLICY, Policy } from "../../policy/file.js";
import { listApprovals } from "../../runtime/approvals.js";
import { isSettled } from "../../runtime/follow.js";
import { prepareQueue } from "../../runtime/queue.js";
import { specFromConfig, type ReleaseSpec } from "../../runtime/releases/spec.js";
import {
  CONFIG_RELEASE,
  createRelease,
  diffReleases,
  getRelease,
  listReleases,
} from "../../runtime/releases/store.js";
import { readTask } from "../../runtime/task/sql.js";
import { submit } from "../../runtime/task/store.js";
import { TaskWorker } from "../../runtime/worker.js";
import { describeTask } from "../../reports/status.js";
import { computeSlo } from "../../observability/slo.js";
import { DEFAULT_SLO_TARGETS } from "../../policy/slo-targets.js";
import { fakeModel, scriptedDeps } from "../fakes/deps.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";
import { waitForTask } from "../helpers/tasks.js";

let t: TestDatabase;
let base: ReleaseSpec;
const workers: TaskWorker[] = [];
beforeAll(async () => {
  t = await createTestDatabase({ KEEL_APPROVAL_TTL_SECONDS: "3600" });
  await prepareQueue(t.db.pool);
  base = specFromConfig(t.config, DEFAULT_POLICY);
});
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop()));
});
afterAll(async () => {
  await t?.drop();
});

/** The base bundle with every message held for a second person. */
const strict = (): ReleaseSpec => ({
  ...base,
  policy: Policy.parse({ tools: { send_message: { decision: "sync_approval" } } }),
});
const make = (name: string, spec: ReleaseSpec) =>
  createRelease(t.db.pool, { name, spec, source: "test", createdBy: "test" });
const text = (m: BaseMessage) => (typeof m.content === "string" ? m.content : JSON.stringify(m.content));

describe("releases", () => {
  it("number the versions of a name, and one bundle made twice is one version", async () => {
    const first = await make("numbered", base);
    const again = await make("numbered", { ...base, graph: "orchestrator" });
    const second = await make("numbered", strict());
    expect([first.created, again.created, second.created]).toEqual([true, false, true]);
    expect(again.release.id).toBe(first.release.id);
    expect([first.release.version, second.release.version]).toEqual([1, 2]);
    expect((await getRelease(t.db.pool, "numbered")).version).toBe(2);
    expect((await getRelease(t.db.pool, "numbered@1")).id).toBe(first.release.id);
    expect((await getRelease(t.db.pool, first.release.id)).version).toBe(1);
    expect((await listReleases(t.db.pool, { name: "numbered" })).map((r) => r.version)).toEqual([2, 1]);
  });

  it("give versions in turn to creates of one name at the same moment", async () => {
    const specs = [1, 2, 3, 4, 5].map((steps) => ({
      ...base,
      limits: { ...base.limits, maxAgentSteps: steps },
    }));
    const made = await Promise.all(specs.map((spec) => make("raced", spec)));
    expect(made.map((m) => m.release.version).sort()).toEqual([1, 2, 3, 4, 5]);
  });

  it("are immutable: the database refuses to change or delete one", async () => {
    const { release } = await make("frozen", base);
    await expect(
      t.db.pool.query("update releases set description = 'x' where id = $1", [release.id]),
    ).rejects.toMatchObject({ code: "KR001", message: expect.stringMatching(/frozen@1 is immutable/) });
    await expect(t.db.pool.query("delete from releases where id = $1", [release.id])).rejects.toMatchObject({
      code: "KR001",
    });
  });

  it("refuse a bad name or reference with what to give instead", async () => {
    await expect(make("has space", base)).rejects.toThrow(InputError);
    await expect(getRelease(t.db.pool, "no-such")).rejects.toThrow(NotFoundError);
    await expect(getRelease(t.db.pool, "no-such")).rejects.toThrow(/keel release create no-such/);
    await make("two", base);
    await expect(getRelease(t.db.pool, "two@9")).rejects.toThrow(/has no version 9: it has 1/);
    await expect(getRelease(t.db.pool, "two@x")).rejects.toThrow(/NAME@VERSION/);
  });

  it("diff field by field", async () => {
    const a = (await make("diff-a", base)).release;
    const b = (
      await make("diff-b", {
        ...strict(),
        limits: { ...base.limits, maxAgentSteps: 3 },
        prompts: { ...base.prompts, planner: "Plan briefly." },
      })
    ).release;
    const changes = diffReleases(a, b);
    expect(changes).toEqual(
      expect.arrayContaining([
        { path: "limits.maxAgentSteps", kind: "changed", from: base.limits.maxAgentSteps, to: 3 },
        { path: "prompts.planner", kind: "changed", from: DEFAULT_PROMPTS.planner, to: "Plan briefly." },
        { path: "policy.tools.send_message", kind: "added", to: { decision: "sync_approval" } },
      ]),
    );
    expect(changes).toHaveLength(3);
    expect(diffReleases(a, a)).toEqual([]);
  });
});

describe("a task on a release", () => {
  const request = "Email ops@harbor.example that the drill is on Friday";

  it("runs on the release's policy and prompts; one submitted to none records the worker's own", async () => {
    const planned = (id: string) => ({
      tasks: [{ task_id: id, type: "communication", objective: "email ops", depends_on: [] }],
    });
    const send = () =>
      fakeModel().respondWithTools([
        {
          name: "send_message",
          args: { to: "ops@harbor.example", subject: "Drill", body: "Friday", confidence: 0.95 },
          id: "send",
        },
      ]);
    const deps = scriptedDeps(t.db.pool, t.config.limits, {
      planner: fakeModel().structuredResponse(planned("t1")).structuredResponse(planned("t1")),
      communication: send().respondWithTools([
        {
          name: "send_message",
          args: { to: "ops@harbor.example", subject: "Drill", body: "Friday", confidence: 0.95 },
          id: "send2",
        },
      ]),
      synthesizer: fakeModel().respond(new AIMessage("done")),
    });
    const candidate = (
      await make("strict", {
        ...strict(),
        prompts: { ...base.prompts, communication: "Write as the strict release." },
      })
    ).release;
    workers.push(await TaskWorker.start(t.db, t.config, { concurrency: 1, deps }));

    const onRelease = (await submit(t.db.pool, t.config, { request, releaseId: candidate.id })).task;
    await waitForTask(t.db.pool, onRelease.id, isSettled);
    const plain = (await submit(t.db.pool, t.config, { request })).task;
    await waitForTask(t.db.pool, plain.id, isSettled);

    const modeOf = async (id: string) => (await listApprovals(t.db.pool, "pending", id)).map((a) => a.mode);
    expect(await modeOf(onRelease.id)).toEqual(["sync"]);
    expect(await modeOf(plain.id)).toEqual(["async"]);
    // The communication agent was told the release's prompt, then the built-in one.
    const systems = deps.models.communication!.calls.map((c) => text(c.messages[0]!));
    expect(systems).toEqual(["Write as the strict release.", DEFAULT_PROMPTS.communication]);

    expect((await describeTask(t.db.pool, onRelease.id)).release).toEqual({
      id: candidate.id,
      label: "strict@1",
    });
    // Submitted to its release, a task is pinned to it; submitted to none, it takes the claiming worker's own.
    expect((await readTask(t.db.pool, onRelease.id))!.release_pinned).toBe(true);
    expect((await readTask(t.db.pool, plain.id))!.release_pinned).toBe(false);
    const own = (await describeTask(t.db.pool, plain.id)).release!;
    expect(own.label).toMatch(new RegExp(`^${CONFIG_RELEASE}@\\d+$`));
    const slo = await computeSlo(t.db.pool, DEFAULT_SLO_TARGETS, {
      since: new Date(Date.now() - 3600_000),
      release: { id: candidate.id, label: "strict@1" },
    });
    expect(slo.release).toBe("strict@1");
    expect(slo.tasks.total).toBe(1);
  });

  it("fails, naming the release, when it needs a model this worker has no endpoint for", async () => {
    const remote = (
      await make("remote", { ...base, model: { name: "gpt-4o", max_tokens: 1000, temperature: 0 } })
    ).release;
    workers.push(await TaskWorker.start(t.db, t.config, { concurrency: 1 }));
    const { task } = await submit(t.db.pool, t.config, {
      request: "Is 97 a prime number?",
      releaseId: remote.id,
    });
    const ended = await waitForTask(t.db.pool, task.id, isSettled);
    expect(ended.status).toBe("failed");
    expect(ended.error_reason).toBe("configuration_error");
    expect(ended.last_error).toMatch(/Release remote@1 runs the model "gpt-4o".*OPENAI_API_KEY/);
  });
});
