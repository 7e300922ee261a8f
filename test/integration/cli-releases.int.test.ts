import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { json, keel } from "../helpers/cli.js";
import { useTestDatabase } from "../helpers/db.js";

let env: Record<string, string>;
useTestDatabase((_db, dbEnv) => (env = dbEnv));

interface Release {
  id: string;
  label: string;
  version: number;
  created: boolean;
}

describe("keel release create / list / show / diff, and keel submit --release", () => {
  it("makes releases from the configuration and from a file, shows and compares them, and runs a task on one", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "keel-release-cli-"));
    fs.writeFileSync(
      path.join(dir, "strict.yaml"),
      "description: every message waits for a second person\npolicy:\n  tools:\n    send_message: { decision: sync_approval }\nlimits: { maxAgentSteps: 5 }\n",
    );
    const baseline = json<Release>(await keel(["release", "create", "baseline", "--json"], env));
    expect(baseline).toMatchObject({ label: "baseline@1", version: 1, created: true });
    const same = await keel(["release", "create", "baseline"], env);
    expect(same.stdout).toMatch(/baseline@1 already holds exactly this bundle/);

    const strict = json<Release>(
      await keel(["release", "create", "strict", "--file", path.join(dir, "strict.yaml"), "--json"], env),
    );
    expect(strict).toMatchObject({ label: "strict@1", created: true });

    const listed = json<(Release & { tasks: number })[]>(await keel(["release", "list", "--json"], env));
    expect(listed.map((r) => r.label)).toEqual(["strict@1", "baseline@1"]);

    const shown = json<{ spec: { limits: { maxAgentSteps: number }; policy: { tools: object } } }>(
      await keel(["release", "show", "strict@1", "--json"], env),
    );
    expect(shown.spec.limits.maxAgentSteps).toBe(5);
    expect(shown.spec.policy.tools).toEqual({ send_message: { decision: "sync_approval" } });

    const diff = await keel(["release", "diff", "baseline", "strict"], env);
    expect(diff.code).toBe(0);
    expect(diff.stdout).toMatch(/baseline@1 -> strict@1: 2 change\(s\)/);
    expect(diff.stdout).toMatch(/~ limits\.maxAgentSteps: 8 -> 5/);
    expect(diff.stdout).toMatch(/\+ policy\.tools\.send_message: \{"decision":"sync_approval"\}/);

    const submitted = json<{ task_id: string; release_id: string }>(
      await keel(["submit", "--release", "strict", "--json", "Is 97 a prime number?"], env),
    );
    expect(submitted.release_id).toBe(strict.id);
    const status = await keel(["status", submitted.task_id], env);
    expect(status.stdout).toMatch(/release strict@1\)/);
  }, 120_000);

  it("refuses bad names, unknown releases and bad files with what to do, and stores nothing", async () => {
    const bad = await keel(["release", "create", "has space"], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/not a release name: use letters, digits/);
    const unknown = await keel(["submit", "--release", "nope", "Is 7 prime?"], env);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/There is no release named nope/);
    const missing = await keel(
      ["release", "create", "x", "--file", "/nonexistent/release.yaml", "--json"],
      env,
    );
    expect(missing.code).toBe(2);
    expect(json<{ error: { message: string } }>(missing).error.message).toMatch(
      /Cannot read the release file/,
    );
    const noVersion = await keel(["release", "show", "baseline@7"], env);
    expect(noVersion.code).toBe(2);
    expect(noVersion.stderr).toMatch(/has no version 7/);
    const listed = json<{ label: string }[]>(await keel(["release", "list", "--json"], env));
    expect(listed.map((r) => r.label)).not.toContain("x@1");
    const tasks = json<{ request: string }[]>(await keel(["list", "--json"], env));
    expect(tasks.map((t) => t.request)).not.toContain("Is 7 prime?");
  }, 120_000);

  it("starts, shows, promotes and aborts a rollout, and refuses what cannot be done", async () => {
    const noBaseline = await keel(["rollout", "start", "strict", "--no-gate"], env);
    expect(noBaseline.code).toBe(2);
    expect(noBaseline.stderr).toMatch(/no stable release .* give --baseline NAME/);
    const badSteps = await keel(
      ["rollout", "start", "strict", "--baseline", "baseline", "--steps", "10;5;100"],
      env,
    );
    expect(badSteps.code).toBe(2);
    expect(badSteps.stderr).toMatch(/--steps: percent steps must rise: 5% comes after 10%/);
    const nothing = await keel(["rollout", "abort"], env);
    expect(nothing.code).toBe(2);
    expect(nothing.stderr).toMatch(/No rollout is in progress\. keel rollout start CANDIDATE starts one/);

    const started = json<{ status: string; step: number; of: number; current: string }>(
      await keel(
        ["rollout", "start", "strict", "--baseline", "baseline", "--cohort", "qa", "--no-gate", "--json"],
        env,
      ),
    );
    expect(started).toMatchObject({ status: "running", step: 1, of: 5, current: "cohort qa" });
    const promoted = json<{ step: number; current: string }>(
      await keel(["rollout", "promote", "--json"], env),
    );
    expect(promoted).toMatchObject({ step: 2, current: "1%" });
    const overview = await keel(["status"], env);
    expect(overview.stdout).toMatch(
      /^releases: stable baseline@1; rollout of strict@1 running at step 2\/5 \(1%\)$/m,
    );
    const aborted = await keel(["rollout", "abort", "--reason", "not today"], env);
    expect(aborted.code).toBe(0);
    expect(aborted.stdout).toMatch(/aborted · strict@1 against baseline@1/);
    expect(aborted.stdout).toMatch(/aborted\s+step 2\s+\S+: not today/);
    const status = json<{ status: string; stable: string; events: { kind: string }[] }>(
      await keel(["rollout", "status", "--json"], env),
    );
    expect(status).toMatchObject({ status: "aborted", stable: "baseline@1" });
    expect(status.events.map((e) => e.kind)).toEqual(["started", "step", "aborted"]);
  }, 120_000);

  it("runs the golden evals on both releases before any traffic, and a regression stops the rollout", async () => {
    // Two golden cases: a message that waits for a person (and is approved), and a document lookup.
    const golden = fs.readFileSync(
      path.resolve(import.meta.dirname, "../../evals/datasets/golden.jsonl"),
      "utf8",
    );
    const picked = golden.split("\n").filter((l) => /"id": "(comms-01|research-01)"/.test(l));
    expect(picked).toHaveLength(2);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "keel-gate-"));
    const dataset = path.join(dir, "gate.jsonl");
    fs.writeFileSync(dataset, `${picked.join("\n")}\n`);
    fs.writeFileSync(
      path.join(dir, "careless.yaml"),
      "policy:\n  tools:\n    send_message: { decision: autonomous }\n",
    );
    fs.writeFileSync(path.join(dir, "tuned.yaml"), "limits: { maxAgentSteps: 7 }\n");
    await keel(["release", "create", "baseline"], env);
    await keel(["release", "create", "careless", "--file", path.join(dir, "careless.yaml")], env);
    await keel(["release", "create", "tuned", "--file", path.join(dir, "tuned.yaml")], env);

    const stopped = await keel(
      ["rollout", "start", "careless", "--baseline", "baseline", "--gate-dataset", dataset],
      env,
    );
    expect(stopped.code, stopped.stderr).toBe(1);
    expect(stopped.stderr).toMatch(
      /the gate stopped careless@1 before any traffic: case comms-01 passed in the baseline and fails now/,
    );
    const after = json<{ status: string; candidate: string; events: { kind: string; reason: string }[] }>(
      await keel(["rollout", "status", "--json"], env),
    );
    expect(after).toMatchObject({ status: "aborted", candidate: "careless@1" });
    expect(after.events.map((e) => e.kind)).toEqual(["gate"]);
    expect(after.events[0]!.reason).toMatch(/^gate failed \(careless@1 1\/2, baseline@1 2\/2\)/);

    const started = await keel(
      ["rollout", "start", "tuned", "--baseline", "baseline", "--gate-dataset", dataset, "--json"],
      env,
    );
    expect(started.code, started.stderr).toBe(0);
    const v = json<{ status: string; events: { kind: string; reason: string }[] }>(started);
    expect(v.status).toBe("running");
    expect(v.events.map((e) => e.kind)).toEqual(["gate", "started"]);
    expect(v.events[0]!.reason).toMatch(/^gate passed \(tuned@1 2\/2, baseline@1 2\/2\)/);
    expect((await keel(["rollout", "abort"], env)).code).toBe(0);

    // keel eval on a release: its summary and reports name it.
    const out = path.join(dir, "reports");
    const evaluated = await keel(
      ["eval", "--dataset", dataset, "--release", "tuned", "--out", out, "--json"],
      env,
    );
    expect(evaluated.code, evaluated.stderr).toBe(0);
    expect(json<{ release: string; passed: number }>(evaluated)).toMatchObject({
      release: "tuned@1",
      passed: 2,
    });
    expect(fs.readFileSync(path.join(out, "report.md"), "utf8")).toMatch(
      /^# Keel eval: gate on release tuned@1/,
    );
  }, 240_000);
});
