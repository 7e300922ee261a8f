import type { BaseMessage } from "@langchain/core/messages";
import type { ChatResult } from "@langchain/core/outputs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { modelInfo, OfflineChatModel } from "../../models/index.js";
import { startObservability } from "../../observability/index.js";
import { createLogger } from "../../observability/log.js";
import { flushTracing } from "../../observability/otel.js";
import { Dependencies } from "../../policy/resilience.js";
import { decide, listApprovals } from "../../runtime/approvals.js";
import { prepareQueue } from "../../runtime/queue.js";
import { submit, type TaskRow } from "../../runtime/task/store.js";
import { TaskWorker } from "../../runtime/worker.js";
import { startOtlpReceiver, type ReceivedSpan } from "../fakes/otlp-receiver.js";
import { json, keel } from "../helpers/cli.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";
import { waitForTask } from "../helpers/tasks.js";

/**
 * One multi-agent request (sample 1: research, data, code, then a message that needs approval) driven by an
 * in-process worker whose planner's model endpoint fails: the first attempt gives up after a retry, the task is
 * retried, the second attempt's retry succeeds. Spans go to a loopback OTLP/HTTP receiver.
 */
let t: TestDatabase;
let receiver: Awaited<ReturnType<typeof startOtlpReceiver>>;
let worker: TaskWorker;
const logs: string[] = [];
let task: TaskRow;

/** The offline model, except that its first `failures` calls fail as an overloaded server would. */
class FlakyModel extends OfflineChatModel {
  calls = 0;
  constructor(private readonly failures: number) {
    super({ sqlRowLimit: 50, maxTokens: 4096 });
  }
  override async _generate(messages: BaseMessage[], options: this["ParsedCallOptions"]): Promise<ChatResult> {
    if (this.calls++ < this.failures)
      throw Object.assign(new Error("503 upstream overloaded"), { status: 503 });
    return super._generate(messages, options);
  }
}

const REQUEST =
  "Summarize our shipping policy, find total revenue by region for 2025, compute each region's share of total revenue, and email the findings to ops@harbor.example";

beforeAll(async () => {
  receiver = await startOtlpReceiver();
  t = await createTestDatabase({
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    KEEL_RETRY_BASE_MS: "1",
    KEEL_LEASE_SECONDS: "10",
  });
  await prepareQueue(t.db.pool);
  startObservability(t.config);
  const offline = new OfflineChatModel({ sqlRowLimit: 50, maxTokens: 4096 });
  // Planner calls: attempt 1 fails twice (one retry, then gives up); attempt 2 fails once, then succeeds.
  const planner = new FlakyModel(3);
  worker = await TaskWorker.start(t.db, t.config, {
    concurrency: 2,
    deps: {
      model: (role) => (role === "planner" ? planner : offline),
      dependencies: new Dependencies({ retries: 1, baseMs: 1, breakerThreshold: 10 }),
      modelInfo: modelInfo(t.config),
    },
    logger: createLogger(
      { logLevel: "debug" },
      { destination: { write: (line: string) => logs.push(line) } },
    ),
  });
  task = (await submit(t.db.pool, t.config, { request: REQUEST, submittedBy: "sam" })).task;
  await waitForTask(t.db.pool, task.id, (r) => r.status === "waiting_for_approval", 60_000);
  const [approval] = (await listApprovals(t.db.pool)).filter((a) => a.task_id === task.id);
  await decide(t.db.pool, approval!.id, { action: "approve", reviewer: "ana" });
  await waitForTask(t.db.pool, task.id, (r) => r.status === "done", 60_000);
  // The drive's span ends just after the task's row says done: flush until all three drives have arrived.
  const drives = () =>
    receiver.spans.filter(
      (s) => s.name === "invoke_agent orchestrator" && s.attributes["keel.root_task.id"] === task.id,
    ).length;
  for (const until = Date.now() + 15_000; drives() < 3 && Date.now() < until;) {
    await flushTracing();
    if (drives() < 3) await new Promise((resolve) => setTimeout(resolve, 50));
  }
}, 120_000);

afterAll(async () => {
  await worker?.stop();
  await receiver?.stop();
  await t?.drop();
});

const byId = (spans: ReceivedSpan[]) => new Map(spans.map((s) => [s.spanId, s]));

describe("OpenTelemetry spans of a multi-agent run", () => {
  it("is one trace from submit through both attempts and the resume, with the span tree of the run", () => {
    const submitSpan = receiver.spans.find(
      (s) => s.name === "submit task" && s.attributes["keel.task.id"] === task.id,
    );
    expect(submitSpan).toBeDefined();
    const ours = receiver.spans.filter((s) => s.attributes["keel.root_task.id"] === task.id);
    expect(new Set(ours.map((s) => s.traceId))).toEqual(new Set([submitSpan!.traceId]));
    const spans = receiver.spans.filter((s) => s.traceId === submitSpan!.traceId);
    const parents = byId(spans);
    const parentName = (s: ReceivedSpan) => parents.get(s.parentSpanId)?.name;

    // Three drives: attempt 1 (fails), attempt 2 (stops at the approval), the resume. Each hangs off submit.
    const drives = spans
      .filter((s) => s.name === "invoke_agent orchestrator")
      .sort((a, b) => a.startMs - b.startMs);
    expect(drives.map((d) => [d.attributes["keel.attempt"], d.attributes["keel.task.status"]])).toEqual([
      [1, "error"],
      [2, "waiting_for_approval"],
      [2, "done"],
    ]);
    expect(drives.every((d) => d.parentSpanId === submitSpan!.spanId)).toBe(true);

    for (const agent of ["research", "data", "code", "communication"]) {
      const invocations = spans.filter((s) => s.name === `invoke_agent ${agent}`);
      expect(invocations.length, agent).toBeGreaterThan(0);
      for (const span of invocations) {
        expect(parentName(span)).toBe("invoke_agent orchestrator");
        expect(span.attributes["keel.parent_task.id"]).toBe(task.id);
        expect(span.attributes["gen_ai.operation.name"]).toBe("invoke_agent");
      }
      const chats = spans.filter((s) => s.name === "chat offline" && s.attributes["keel.agent"] === agent);
      expect(chats.length, agent).toBeGreaterThan(0);
      for (const chat of chats) expect(parentName(chat)).toBe(`invoke_agent ${agent}`);
      for (const tool of spans.filter(
        (s) => s.name.startsWith("execute_tool") && s.attributes["keel.agent"] === agent,
      ))
        expect(parentName(tool)).toBe(`invoke_agent ${agent}`);
    }
    const planner = spans.filter(
      (s) => s.name === "chat offline" && s.attributes["keel.agent"] === "planner",
    );
    expect(planner.map(parentName)).toEqual(["invoke_agent orchestrator", "invoke_agent orchestrator"]);
    expect(
      spans
        .filter((s) => s.name.startsWith("handoff "))
        .map((s) => s.name)
        .sort(),
    ).toEqual(["handoff code", "handoff communication", "handoff data", "handoff research"]);
  });

  it("carries the GenAI attributes, with the token counts the trajectory store has for each call", async () => {
    const { rows } = await t.db.pool.query<{ span_id: string; input_tokens: number; output_tokens: number }>(
      "select span_id, input_tokens, output_tokens from trajectory_steps where thread_id = $1 and kind = 'model_call' and status = 'ok'",
      [task.id],
    );
    expect(rows.length).toBeGreaterThanOrEqual(10);
    const spans = byId(receiver.spans);
    for (const row of rows) {
      const span = spans.get(row.span_id);
      expect(span?.name).toBe("chat offline");
      expect(span!.attributes).toMatchObject({
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "keel.offline",
        "gen_ai.request.model": "offline",
        "gen_ai.request.max_tokens": 4096,
        "gen_ai.usage.input_tokens": row.input_tokens,
        "gen_ai.usage.output_tokens": row.output_tokens,
      });
      expect(row.input_tokens).toBeGreaterThan(0);
      expect(["stop", "tool_calls"]).toContain(
        (span!.attributes["gen_ai.response.finish_reasons"] as string[])[0],
      );
    }
    const send = receiver.spans.find((s) => s.name === "execute_tool send_message");
    expect(send?.attributes).toMatchObject({ "gen_ai.tool.name": "send_message", "keel.tool.status": "ok" });
    expect(String(send!.attributes["keel.tool.arguments"])).toContain("[email]");
  });

  it("has spans for the retries, the policy decision and the approval wait with its reviewer", () => {
    const ours = receiver.spans.filter(
      (s) => s.traceId === receiver.spans.find((x) => x.name === "submit task")!.traceId,
    );
    const retries = ours.filter((s) => s.name === "retry model endpoint");
    expect(retries).toHaveLength(2);
    expect(retries.every((r) => r.attributes["keel.dependency"] === "model endpoint")).toBe(true);
    expect(ours.filter((s) => s.name === "retry task")).toHaveLength(1);
    const failedCall = ours.find((s) => s.name === "chat offline" && s.status.code === 2);
    expect(failedCall?.attributes["error.type"]).toBe("dependency_failed");
    const decision = ours.find((s) => s.name === "policy_decision send_message");
    expect(decision?.attributes["keel.policy.decision"]).toBe("async_approval");
    const wait = ours.find((s) => s.name === "approval_wait send_message");
    expect(wait?.attributes).toMatchObject({
      "keel.approval.reviewer": "ana",
      "keel.approval.status": "approved",
    });
    expect(wait!.endMs).toBeGreaterThanOrEqual(wait!.startMs);
    expect(ours.find((s) => s.name === "guardrail input")?.attributes["keel.guardrail.action"]).toBe("pass");
  });

  it("logs claims and settles as JSON lines with the task id and the trace id", () => {
    const lines = logs.map((l) => JSON.parse(l) as Record<string, unknown>);
    const traceId = receiver.spans.find((s) => s.name === "submit task")!.traceId;
    const settled = lines.filter((l) => l.msg === "task settled" && l.task_id === task.id);
    expect(settled.map((l) => l.status)).toEqual(["error", "waiting_for_approval", "done"]);
    expect(settled.every((l) => l.trace_id === traceId && typeof l.span_id === "string")).toBe(true);
    expect(lines.some((l) => l.msg === "task run failed" && l.error_class === "dependency_failed")).toBe(
      true,
    );
  });
});

describe("keel trace", () => {
  it("shows the failure, the retry and the approval in order, with timings", async () => {
    const result = await keel(["trace", task.id], { DATABASE_URL: t.url });
    expect(result.code, result.stderr).toBe(0);
    const lines = result.stdout.split("\n");
    const at = (pattern: RegExp) => {
      const i = lines.findIndex((l) => pattern.test(l));
      expect(i, `no line matches ${pattern}\n${result.stdout}`).toBeGreaterThanOrEqual(0);
      return i;
    };
    const failedCall = at(
      /✗ planner chat offline · \d+ ms · error .*dependency_failed|✗ planner chat offline.*error/,
    );
    const endpointRetry = at(/✗ retry model endpoint after error/);
    const taskFailed = at(/✗ task failed \(attempt 1\)\s+dependency_failed/);
    const taskRetry = at(/✗ retry task after dependency_failed · scheduled\s+attempt 2 in \d+ ms/);
    const requested = at(/approval requested \(async\) for send_message\s+why: send_message is high risk/);
    const decided = at(/approval approved for send_message\s+approve by ana after [\d.]+ s/);
    const done = at(/task done \(attempt 2\)/);
    expect(endpointRetry).toBeGreaterThan(failedCall);
    expect(taskFailed).toBeGreaterThan(endpointRetry);
    expect(taskRetry).toBeGreaterThan(taskFailed);
    expect(requested).toBeGreaterThan(taskRetry);
    expect(decided).toBeGreaterThan(requested);
    expect(done).toBeGreaterThan(decided);
    // Every timeline line starts with its offset; calls show their duration, tokens and cost.
    expect(lines[0]).toMatch(
      new RegExp(
        `^task ${task.id} · done · 2 attempts · [\\d.]+s · [\\d,]+ tokens · \\$0\\.000000 · trace [0-9a-f]{32}`,
      ),
    );
    expect(lines.filter((l) => /^\s+\d+\.\d\ds {2}/.test(l)).length).toBeGreaterThan(30);
    expect(result.stdout).toMatch(/│ chat offline \(turn 1\) · \d+ ms · [\d,]+ tok · \$0\.000000 · ok/);
    expect(result.stdout).toMatch(/┌ t2 data · done · \d+ model calls · \d+ tool calls/);
  });

  it("gives the same story as JSON, in time order, with totals that match the task's usage", async () => {
    const trace = json<{
      task: { id: string; attempts: number; status: string };
      totals: { input_tokens: number; output_tokens: number; retries: number; approvals: number };
      agents: { task_id: string; agent: string; status: string }[];
      timeline: { offset_ms: number; kind: string; status: string }[];
    }>(await keel(["trace", task.id, "--json"], { DATABASE_URL: t.url }));
    expect(trace.task).toMatchObject({ id: task.id, attempts: 2, status: "done" });
    expect(trace.agents.map((a) => `${a.task_id}:${a.agent}:${a.status}`)).toEqual([
      "t1:research:done",
      "t2:data:done",
      "t3:code:done",
      "t4:communication:done",
    ]);
    const offsets = trace.timeline.map((e) => e.offset_ms);
    expect(offsets).toEqual([...offsets].sort((a, b) => a - b));
    expect(trace.totals).toMatchObject({ retries: 3, approvals: 1 });
    const usage = (
      await t.db.pool.query<{ tokens: number }>("select tokens::int from task_usage where thread_id = $1", [
        task.id,
      ])
    ).rows[0]!;
    expect(trace.totals.input_tokens + trace.totals.output_tokens).toBe(usage.tokens);
  });

  it("says which id was not found, and rejects one that is not an id", async () => {
    const missing = await keel(["trace", "00000000-0000-0000-0000-000000000000"], { DATABASE_URL: t.url });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/No task has id 00000000-0000-0000-0000-000000000000/);
    const bad = await keel(["trace", "not-an-id"], { DATABASE_URL: t.url });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/No task has id not-an-id/);
  });
});

describe("redaction", () => {
  const PII = [
    "jane.roe@example.com",
    "4111 1111 1111 1111",
    "4111111111111111",
    "DE89 3704 0044 0532 0130 00",
    "DE89370400440532013000",
    "+1 415 555 0172",
    "415 555 0172",
    "203.0.113.7",
  ];
  const leaks = (text: string) => PII.filter((p) => text.includes(p));

  it("keeps a request full of PII out of the trajectory store, the spans, the logs and keel trace", async () => {
    const { task: pii } = await submit(t.db.pool, t.config, {
      request:
        "Email jane.roe@example.com that the card 4111 1111 1111 1111, IBAN DE89 3704 0044 0532 0130 00 and phone +1 415 555 0172 of customer 203.0.113.7 are on file",
    });
    await waitForTask(t.db.pool, pii.id, (r) => r.status === "waiting_for_approval", 60_000);
    const [approval] = (await listApprovals(t.db.pool)).filter((a) => a.task_id === pii.id);
    // A message carrying a card number and an IBAN needs the strongest approval, and its reviewer never sees them.
    expect(approval).toMatchObject({ mode: "sync", context: { confirm: "send_message" } });
    expect(JSON.stringify(approval!.context)).not.toMatch(/4111|DE89/);
    await decide(
      t.db.pool,
      approval!.id,
      { action: "approve", reviewer: "ana" },
      { confirm: "send_message" },
    );
    await waitForTask(t.db.pool, pii.id, (r) => r.status === "done", 60_000);
    await flushTracing();

    // The PII really went through the run: the task row (which the run needs until it is purged) has it.
    const stored = async (sql: string) =>
      (await t.db.pool.query<{ text: string | null }>(sql, [pii.id])).rows[0]?.text ?? "";
    const request = await stored("select request as text from tasks where id = $1");
    expect(request).toContain("jane.roe@example.com");
    expect(request).toContain("4111 1111 1111 1111");
    const steps = await stored(
      "select string_agg(row_to_json(s)::text, ' ') as text from trajectory_steps s where thread_id = $1::text",
    );
    expect(steps).toMatch(/tool_call.*send_message/);
    expect(steps).toContain("[email]");
    expect(leaks(steps)).toEqual([]);
    expect(
      leaks(
        await stored(
          "select string_agg(row_to_json(d)::text, ' ') as text from policy_decisions d where thread_id = $1::text",
        ),
      ),
    ).toEqual([]);

    const spans = receiver.bodies.join("\n");
    expect(receiver.spans.some((s) => s.attributes["keel.root_task.id"] === pii.id)).toBe(true);
    expect(leaks(spans)).toEqual([]);

    const ours = logs.filter((l) => l.includes(pii.id));
    expect(ours.length).toBeGreaterThan(0);
    expect(leaks(logs.join("\n"))).toEqual([]);

    const trace = await keel(["trace", pii.id, "--json"], { DATABASE_URL: t.url });
    expect(trace.code).toBe(0);
    expect(trace.stdout).toContain("send_message");
    expect(leaks(trace.stdout)).toEqual([]);
  }, 120_000);
});
