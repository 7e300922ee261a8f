import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_POLICY, Policy } from "../../policy/file.js";
import { RolloutAnalysis } from "../../policy/rollout.js";
import { DEFAULT_SLO_TARGETS } from "../../policy/slo-targets.js";
import { isSettled } from "../../runtime/follow.js";
import { prepareQueue } from "../../runtime/queue.js";
import { analyzeRollout } from "../../runtime/releases/analysis.js";
import {
  latestRollout,
  rolloutEvents,
  stableRelease,
  startRollout,
} from "../../runtime/releases/rollouts.js";
import { specFromConfig, type ReleaseSpec } from "../../runtime/releases/spec.js";
import { createRelease, type ReleaseRow } from "../../runtime/releases/store.js";
import { submit } from "../../runtime/task/store.js";
import { TaskWorker } from "../../runtime/worker.js";
import { startChaosModelServer, type ChaosModelServer } from "../fakes/chaos-model-server.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";
import { seeded } from "../helpers/random.js";
import { waitForTask } from "../helpers/tasks.js";

// Timings are not what these tests judge: the latency limits and targets are wide, so a loaded machine cannot
// fail a healthy step. What they judge is the policy's effect (high-risk calls without a person) and the flow.
const TARGETS = {
  ...DEFAULT_SLO_TARGETS,
  p95_time_to_first_token_seconds: 600,
  p95_time_to_completion_seconds: 600,
};
const RULES = RolloutAnalysis.parse({ window_minutes: 0, min_sample: 2, max_latency_ratio: 1000 });

let t: TestDatabase;
let worker: TaskWorker;
let steady: ReleaseRow;
let risky: ReleaseRow;
let tuned: ReleaseRow;
let flaky: ReleaseRow;
let endpoint: ChaosModelServer;
const posted: { text: string; keel: unknown }[] = [];
let hook: http.Server;
let hookUrl: string;

beforeAll(async () => {
  // No retries of a model call or of a task: each failure of the flaky endpoint reaches the task it belongs to.
  t = await createTestDatabase({
    KEEL_APPROVAL_TTL_SECONDS: "3600",
    KEEL_DEPENDENCY_RETRIES: "0",
    KEEL_MAX_RETRIES: "0",
  });
  await prepareQueue(t.db.pool);
  const spec = specFromConfig(t.config, DEFAULT_POLICY);
  const make = async (name: string, change: Partial<ReleaseSpec>) =>
    (
      await createRelease(t.db.pool, {
        name,
        spec: { ...spec, ...change },
        source: "test",
        createdBy: "test",
      })
    ).release;
  steady = await make("steady", {});
  // A policy that stops asking a person before a message goes out.
  risky = await make("risky", {
    policy: Policy.parse({ tools: { send_message: { decision: "autonomous" } } }),
  });
  tuned = await make("tuned", { limits: { ...spec.limits, maxAgentSteps: 7 } });
  // A model endpoint that answers as the offline model does, except that 30% of its calls fail (HTTP 503).
  endpoint = await startChaosModelServer({ faultRate: 0.3, random: seeded(7), kinds: ["server_error"] });
  flaky = await make("flaky", {
    model: { name: "flaky-model", base_url: endpoint.url, max_tokens: 1024, temperature: 0 },
  });
  hook = http.createServer((req, res) => {
    let body = "";
    req.on("data", (d: Buffer) => (body += d.toString()));
    req.on("end", () => {
      posted.push(JSON.parse(body) as { text: string; keel: unknown });
      res.end("ok");
    });
  });
  await new Promise<void>((resolve) => hook.listen(0, "127.0.0.1", resolve));
  hookUrl = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook`;
  worker = await TaskWorker.start(t.db, t.config, { concurrency: 4 });
}, 60_000);
afterAll(async () => {
  await worker?.stop();
  await endpoint?.close();
  hook?.close();
  await t?.drop();
});

/** Submits each request as its submitter and waits until all have settled (done, failed or waiting). */
async function run(requests: [submitter: string, request: string][]) {
  const tasks = await Promise.all(
    requests.map(
      async ([submittedBy, request]) => (await submit(t.db.pool, t.config, { request, submittedBy })).task,
    ),
  );
  return Promise.all(tasks.map((task) => waitForTask(t.db.pool, task.id, isSettled, 90_000)));
}

describe("automated analysis of a rollout", () => {
  it("rolls back a candidate that stops asking for approval within its window, says why, and assigns it nothing more", async () => {
    const rollout = await startRollout(t.db.pool, {
      candidate: risky,
      baseline: steady,
      key: "submitter",
      steps: [{ cohort: ["canary"] }, { percent: 100 }],
      actor: "ana",
      analysis: { rules: RULES, webhook_url: hookUrl },
    });
    const email = "Email ops@harbor.example that the drill is on Friday";
    const first = await run([
      ["canary", email],
      ["canary", email],
      ["ben", email],
      ["cy", email],
    ]);
    expect(first.map((x) => x.release_id)).toEqual([risky.id, risky.id, steady.id, steady.id]);
    // The candidate sent without a person; the baseline waits for one.
    expect(first.map((x) => x.status)).toEqual([
      "done",
      "done",
      "waiting_for_approval",
      "waiting_for_approval",
    ]);

    const verdict = await analyzeRollout(t.db.pool, TARGETS);
    expect(verdict.outcome).toBe("rolled_back");
    expect(verdict.notification).toBe("sent");
    expect(verdict.reason).toMatch(/^unreviewed_high_risk breached: unreviewed_high_risk 2 \(baseline 0;/);
    const ended = (await latestRollout(t.db.pool))!;
    expect(ended).toMatchObject({ id: rollout.id, status: "aborted" });
    expect((await stableRelease(t.db.pool))!.id).toBe(steady.id);
    const events = await rolloutEvents(t.db.pool, rollout.id);
    expect(events.at(-1)).toMatchObject({
      kind: "aborted",
      actor: "analysis",
      reason: `rolled back: ${verdict.reason}`,
      details: { breached: ["unreviewed_high_risk"] },
    });
    expect(posted).toHaveLength(1);
    expect(posted[0]!.text).toMatch(
      /Keel rolled back risky@1 against steady@1 at step 1: unreviewed_high_risk breached/,
    );

    // No further task goes to the candidate, the canary's included.
    const after = await Promise.all(
      ["canary", "ben"].map(
        async (who) =>
          (await submit(t.db.pool, t.config, { request: "Is 97 a prime number?", submittedBy: who })).task,
      ),
    );
    expect(after.map((x) => x.release_id)).toEqual([steady.id, steady.id]);
    await Promise.all(after.map((x) => waitForTask(t.db.pool, x.id, isSettled, 90_000)));
  }, 180_000);

  it("rolls back a candidate whose model endpoint fails 30% of its calls, naming its success rate", async () => {
    const rollout = await startRollout(t.db.pool, {
      candidate: flaky,
      baseline: steady,
      key: "submitter",
      steps: [{ cohort: ["canary"] }, { percent: 100 }],
      actor: "ana",
      analysis: { rules: RULES, webhook_url: hookUrl },
    });
    const prime = "Is 97 a prime number?";
    const ran = await run([
      ["canary", prime],
      ["canary", prime],
      ["canary", prime],
      ["canary", prime],
      ["ben", prime],
      ["cy", prime],
    ]);
    expect(ran.map((x) => x.release_id)).toEqual([
      flaky.id,
      flaky.id,
      flaky.id,
      flaky.id,
      steady.id,
      steady.id,
    ]);
    expect(endpoint.faults.server_error).toBeGreaterThan(0);
    expect(ran.slice(0, 4).some((x) => x.status === "failed")).toBe(true);
    expect(ran.slice(4).map((x) => x.status)).toEqual(["done", "done"]);
    // The candidate's endpoint has a circuit breaker of its own, named with its release (/metrics shows it).
    expect(worker.breakers()).toContainEqual({
      name: "model endpoint",
      state: expect.any(String) as string,
      release: "flaky@1",
    });

    const verdict = await analyzeRollout(t.db.pool, TARGETS);
    expect(verdict.outcome).toBe("rolled_back");
    expect(verdict.reason).toMatch(
      /task_success_rate\b.*breached: .*task_success_rate 0(\.\d+)? \(baseline 1;/,
    );
    expect(await latestRollout(t.db.pool)).toMatchObject({ id: rollout.id, status: "aborted" });
    const events = await rolloutEvents(t.db.pool, rollout.id);
    expect(events.at(-1)).toMatchObject({ kind: "aborted", actor: "analysis" });
    expect((events.at(-1)!.details as { breached: string[] }).breached).toContain("task_success_rate");
    expect(posted.at(-1)!.text).toMatch(
      /Keel rolled back flaky@1 against steady@1 at step 1: .*task_success_rate/,
    );
    // The canary's next request goes to the baseline, and the endpoint is not called again.
    const calls = endpoint.calls;
    const [next] = await run([["canary", prime]]);
    expect(next).toMatchObject({ release_id: steady.id, status: "done" });
    expect(endpoint.calls).toBe(calls);
  }, 180_000);

  it("waits while a step has too few candidate tasks, then promotes a healthy candidate through every step", async () => {
    const rollout = await startRollout(t.db.pool, {
      candidate: tuned,
      key: "submitter",
      steps: [{ cohort: ["canary"] }, { percent: 10 }, { percent: 50 }, { percent: 100 }],
      actor: "ana",
      analysis: { rules: RULES, webhook_url: hookUrl },
    });
    expect(rollout.baseline_id).toBe(steady.id);
    expect((await analyzeRollout(t.db.pool, TARGETS)).outcome).toBe("inconclusive");
    const prime = "Is 97 a prime number?";
    for (let step = 0; step < 4; step++) {
      // The canary cohort keeps the candidate at every step; the others fall where their hash puts them.
      const ran = await run([
        ["canary", prime],
        ["canary", prime],
        ["ben", prime],
        ["cy", prime],
      ]);
      expect(ran.every((x) => x.status === "done")).toBe(true);
      const verdict = await analyzeRollout(t.db.pool, TARGETS);
      expect(verdict).toMatchObject({ outcome: "passed", step });
    }
    const ended = (await latestRollout(t.db.pool))!;
    expect(ended).toMatchObject({ id: rollout.id, status: "promoted" });
    expect((await stableRelease(t.db.pool))!.id).toBe(tuned.id);
    const events = await rolloutEvents(t.db.pool, rollout.id);
    expect(events.map((e) => [e.kind, e.actor])).toEqual([
      ["started", "ana"],
      ["step", "analysis"],
      ["step", "analysis"],
      ["step", "analysis"],
      ["promoted", "analysis"],
    ]);
    expect(events[1]!.reason).toMatch(/^analysis passed over 2 candidate and 2 baseline tasks/);
    expect(posted.at(-1)!.text).toMatch(/Keel promoted tuned@1 against steady@1 to every task/);
  }, 240_000);
});
