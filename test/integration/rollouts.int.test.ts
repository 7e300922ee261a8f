import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InputError, NotFoundError } from "../../core/errors.js";
import { DEFAULT_POLICY, Policy } from "../../policy/file.js";
import { prepareQueue } from "../../runtime/queue.js";
import { getsCandidate } from "../../runtime/releases/assign.js";
import {
  abortRollout,
  activeRollout,
  pauseRollout,
  promoteRollout,
  resumeRollout,
  rolloutEvents,
  stableRelease,
  startRollout,
} from "../../runtime/releases/rollouts.js";
import { specFromConfig } from "../../runtime/releases/spec.js";
import { createRelease, type ReleaseRow } from "../../runtime/releases/store.js";
import { readTask } from "../../runtime/task/sql.js";
import { submit } from "../../runtime/task/store.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";

let t: TestDatabase;
let baseline: ReleaseRow;
let candidate: ReleaseRow;
beforeAll(async () => {
  t = await createTestDatabase();
  await prepareQueue(t.db.pool);
  const spec = specFromConfig(t.config, DEFAULT_POLICY);
  const make = async (name: string, policy: Policy) =>
    (await createRelease(t.db.pool, { name, spec: { ...spec, policy }, source: "test", createdBy: "test" }))
      .release;
  baseline = await make("base", DEFAULT_POLICY);
  candidate = await make("cand", Policy.parse({ tools: { send_message: { decision: "autonomous" } } }));
});
afterAll(async () => {
  await t?.drop();
});

const submitAs = async (submittedBy: string, workflow?: string) =>
  (await submit(t.db.pool, t.config, { request: "Is 97 a prime number?", submittedBy, workflow })).task;

describe("a rollout", () => {
  it("needs a baseline: the stable release, or one given", async () => {
    await expect(
      startRollout(t.db.pool, { candidate, key: "submitter", steps: [{ percent: 100 }], actor: "ana" }),
    ).rejects.toThrow(/no stable release .* give --baseline/);
    await expect(
      startRollout(t.db.pool, {
        candidate,
        baseline: candidate,
        key: "submitter",
        steps: [{ percent: 100 }],
        actor: "ana",
      }),
    ).rejects.toThrow(InputError);
    await expect(pauseRollout(t.db.pool, "ana")).rejects.toThrow(NotFoundError);
  });

  it("assigns new tasks by a hash of their key, sticky; moves step by step; records every change with its reason", async () => {
    const rollout = await startRollout(t.db.pool, {
      candidate,
      baseline,
      key: "submitter",
      steps: [{ cohort: ["alice"] }, { percent: 10 }, { percent: 50 }, { percent: 100 }],
      actor: "ana",
    });
    expect((await stableRelease(t.db.pool))!.id).toBe(baseline.id);
    await expect(
      startRollout(t.db.pool, { candidate, baseline, key: "task", steps: [{ percent: 100 }], actor: "bo" }),
    ).rejects.toThrow(/already in progress/);

    // The cohort step: alice gets the candidate; nobody else does.
    expect((await submitAs("alice")).release_id).toBe(candidate.id);
    expect((await submitAs("bob")).release_id).toBe(baseline.id);

    await promoteRollout(t.db.pool, "ana");
    const users = Array.from({ length: 60 }, (_, i) => `user-${i}`);
    const first = await Promise.all(users.map((u) => submitAs(u)));
    const expected = users.map((u) =>
      getsCandidate(rollout.steps, 1, rollout.salt, u) ? candidate.id : baseline.id,
    );
    expect(first.map((x) => x.release_id)).toEqual(expected);
    // Sticky: the same submitters again, the same releases; paused, still the same.
    await pauseRollout(t.db.pool, "ana", "checking a dashboard");
    const again = await Promise.all(users.map((u) => submitAs(u)));
    expect(again.map((x) => x.release_id)).toEqual(expected);
    await resumeRollout(t.db.pool, "ana");
    // Eval runs are not traffic: they stay on the stable release.
    expect((await submitAs("alice", "eval")).release_id).toBe(baseline.id);

    await promoteRollout(t.db.pool, "ana", { full: true, reason: "healthy at 10%" });
    expect(await activeRollout(t.db.pool)).toBeUndefined();
    expect((await stableRelease(t.db.pool))!.id).toBe(candidate.id);
    expect((await submitAs("bob")).release_id).toBe(candidate.id);

    const events = await rolloutEvents(t.db.pool, rollout.id);
    expect(events.map((e) => [e.kind, e.step, e.actor])).toEqual([
      ["started", 0, "ana"],
      ["step", 1, "ana"],
      ["paused", 1, "ana"],
      ["resumed", 1, "ana"],
      ["promoted", 3, "ana"],
    ]);
    expect(events.map((e) => e.reason)).toEqual([
      expect.stringMatching(/cand@1 against base@1, by submitter: cohort alice -> 10% -> 50% -> 100%/),
      "moved to step 2 of 4: 10%",
      "checking a dashboard",
      "resumed by hand",
      "healthy at 10%",
    ]);
  });

  it("rolled back: new tasks go to the baseline at once, and the queued tasks it gave the candidate move to it", async () => {
    // The stable release is now cand@1 (promoted above): roll base@1 out against it, then abort.
    const rollout = await startRollout(t.db.pool, {
      candidate: baseline,
      key: "task",
      steps: [{ percent: 100 }],
      actor: "ana",
    });
    expect(rollout.baseline_id).toBe(candidate.id);
    const queued = await submitAs("carol");
    expect(queued).toMatchObject({ release_id: baseline.id, rollout_id: rollout.id });
    // Asked for by name: it stays on the candidate.
    const named = (
      await submit(t.db.pool, t.config, { request: "Is 97 a prime number?", releaseId: baseline.id })
    ).task;
    expect(named).toMatchObject({ release_id: baseline.id, rollout_id: null });
    const { moved } = await abortRollout(t.db.pool, "analysis", "success_rate breached: 70% < 95%", {
      breached: ["success_rate"],
    });
    expect(moved).toBe(1);
    expect((await readTask(t.db.pool, queued.id))!.release_id).toBe(candidate.id);
    expect((await readTask(t.db.pool, named.id))!.release_id).toBe(baseline.id);
    expect((await submitAs("carol")).release_id).toBe(candidate.id);
    const [, aborted] = await rolloutEvents(t.db.pool, rollout.id);
    expect(aborted).toMatchObject({
      kind: "aborted",
      actor: "analysis",
      reason: "success_rate breached: 70% < 95%",
      details: { breached: ["success_rate"], moved_to_baseline: 1 },
    });
    await expect(promoteRollout(t.db.pool, "ana")).rejects.toThrow(/No rollout is in progress/);
  });
});
