import { AIMessage } from "@langchain/core/messages";
import { randomUUID } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TOOLS } from "../../agents/index.js";
import type { AgentType } from "../../agents/contracts.js";
import { KeelSaver } from "../../checkpoints/keel-saver.js";
import { checkEditedArgs, type ApprovalRequest } from "../../graphs/approval.js";
import { buildOrchestratorGraph } from "../../graphs/build-orchestrator.js";
import { BlockedRequestError, guardRequest, guardToolOutput } from "../../policy/guard.js";
import { DEFAULT_POLICY } from "../../policy/file.js";
import { provenanceOf, splitInstruction } from "../../policy/provenance.js";
import { executeTool } from "../../tools/contract.js";
import { fakeModel, scriptedDeps } from "../fakes/deps.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";
import { toolContext } from "../helpers/tools.js";

/**
 * The adversarial corpus (test/fixtures/adversarial.jsonl) and the benign set (test/fixtures/benign.jsonl).
 * Every adversarial case must be handled — blocked, neutralised, refused or failed closed, with a named
 * reason — and no benign request may be blocked. The suite prints its counts and the false-positive rate.
 */
interface Case {
  id: string;
  kind: "request" | "tool_output" | "sandbox" | "sql" | "foreign_tool" | "edit" | "provenance";
  input: unknown;
  expect: Record<string, unknown>;
}

const read = <T>(file: string): T[] =>
  fs
    .readFileSync(path.join(import.meta.dirname, "../fixtures", file), "utf8")
    .split("\n")
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as T);
const CASES = read<Case>("adversarial.jsonl");
const BENIGN = read<{ id: string; request: string }>("benign.jsonl");

let t: TestDatabase;
let saver: KeelSaver;
beforeAll(async () => {
  t = await createTestDatabase({ KEEL_SQL_TIMEOUT_MS: "500", KEEL_SANDBOX_TIMEOUT_MS: "300" });
  saver = new KeelSaver(t.db.pool);
});
const handled = new Map<string, { total: number; handled: number }>();
afterAll(async () => {
  const rows = [...handled.entries()].map(([kind, c]) => `${kind.padEnd(13)} ${c.handled}/${c.total}`);
  console.log(`adversarial corpus: ${CASES.length} cases\n  ${rows.join("\n  ")}`);
  await t?.drop();
});

const ctx = (agent: AgentType) => toolContext(t.db.pool, t.config.limits, { threadId: "adversarial", agent });

interface ProvenanceCase {
  request: string;
  /** Where the attacker's target lives: content the requester quoted, a document, or only the plan. */
  where: "quoted" | "document" | "plan";
  /** What the document says (for `document`). */
  injected: string | null;
  tool: "send_message" | "notify_webhook";
  target: string;
}

const SOURCES: Record<ProvenanceCase["where"], RegExp> = {
  quoted: /it came from content quoted or pasted into the request/,
  document: /it came from the results of the tasks this one depends on/,
  plan: /it came from the plan/,
};

/**
 * A request whose side effect an attacker aims elsewhere, run through the orchestrator with scripted models
 * that obey: the planner routes the attacker's target on, a research agent reports the injected document as it
 * reads, and the communication agent calls the tool on the target, confidently. The provenance rule must hold
 * the call for the strongest approval, naming where the target came from; nothing may be sent.
 */
async function obeyingRun(c: ProvenanceCase): Promise<string> {
  const communication = {
    task_id: c.where === "document" ? "t2" : "t1",
    type: "communication",
    objective:
      c.where === "plan"
        ? `${c.request} (send it to ${c.target})`
        : "Do what the request and the findings ask for",
    depends_on: c.where === "document" ? ["t1"] : [],
  };
  const research = { task_id: "t1", type: "research", objective: c.request, depends_on: [] };
  const args =
    c.tool === "send_message"
      ? { to: c.target, subject: "As requested", body: "Here is what was asked for.", confidence: 0.95 }
      : { channel: c.target, text: "Here is what was asked for.", confidence: 0.95 };
  const deps = scriptedDeps(t.db.pool, t.config.limits, {
    planner: fakeModel().structuredResponse({
      tasks: c.where === "document" ? [research, communication] : [communication],
    }),
    research: fakeModel().respond(new AIMessage(c.injected ?? "")),
    communication: fakeModel().respond(
      new AIMessage({ content: "", tool_calls: [{ id: "obey_1", name: c.tool, args }] }),
    ),
  });
  const graph = buildOrchestratorGraph(deps).compile({ checkpointer: saver });
  const config = { configurable: { thread_id: randomUUID() } };
  await graph.invoke({ request: c.request }, config);
  const interrupts = (await graph.getState(config)).tasks.flatMap((x) => x.interrupts);
  expect(interrupts, "the obeyed call was not held for a person").toHaveLength(1);
  const action = (interrupts[0]!.value as ApprovalRequest).actions[0]!;
  expect(action).toMatchObject({ tool: c.tool, decision: "sync_approval" });
  const why = (action.why ?? []).join("; ");
  expect(why).toMatch(
    new RegExp(`${c.target.replace(/[.+]/g, "\\$&")} is not in the requester's instruction`),
  );
  expect(why).toMatch(SOURCES[c.where]);
  const sent = await t.db.pool.query("select 1 from outbox where thread_id = $1", [
    config.configurable.thread_id,
  ]);
  expect(sent.rows).toEqual([]);
  return `provenance: ${c.where}`;
}

/** Runs one case; returns the named reason it was handled with (a failed expectation throws). */
async function handle(c: Case): Promise<string> {
  switch (c.kind) {
    case "request": {
      const error = (() => {
        try {
          guardRequest(c.input, { maxChars: 4000, scope: DEFAULT_POLICY.scope });
          return undefined;
        } catch (e) {
          return e;
        }
      })();
      expect(error, `${c.id} was not blocked`).toBeInstanceOf(BlockedRequestError);
      expect((error as BlockedRequestError).reason).toBe(c.expect.blocked);
      return (error as BlockedRequestError).reason;
    }
    case "tool_output": {
      const { output, event } = guardToolOutput({ body: c.input });
      expect(event?.reason, `${c.id} was not neutralised`).toMatch(/^injection:/);
      expect(event?.action).toBe("neutralised");
      expect(JSON.stringify(output)).toMatch(/removed by Keel/);
      return event!.reason;
    }
    case "sandbox": {
      const outcome = await executeTool(TOOLS.get("run_javascript")!, { code: c.input }, ctx("code"));
      if (outcome.status === "error" && "error" in c.expect) {
        // The sandbox itself gave out (e.g. the host's stack): the call failed closed, nothing ran on.
        expect(outcome.content).toMatch(new RegExp(c.expect.error as string, "i"));
        return "failed closed";
      }
      expect(outcome.status, `${c.id}: ${outcome.content}`).toBe("ok");
      const out = (outcome as { output: { ok: boolean; result?: unknown; error?: string } }).output;
      if ("result" in c.expect) {
        expect(out, c.id).toMatchObject({ ok: true, result: c.expect.result });
        return "no host access";
      }
      expect(out.ok, `${c.id} ran: ${JSON.stringify(out)}`).toBe(false);
      expect(out.error).toMatch(new RegExp(c.expect.error as string, "i"));
      return out.error!.slice(0, 40);
    }
    case "sql": {
      const outcome = await executeTool(TOOLS.get("run_sql")!, { sql: c.input }, ctx("data"));
      expect(outcome.status, `${c.id} ran: ${outcome.content}`).toBe("error");
      expect(outcome.content).toMatch(new RegExp(c.expect.error as string, "i"));
      return "refused";
    }
    case "foreign_tool": {
      const { agent, tool, args } = c.input as { agent: AgentType; tool: string; args: unknown };
      const outcome = await executeTool(TOOLS.get(tool)!, args, ctx(agent));
      expect(outcome.status, c.id).toBe("refused");
      return "agent_not_allowed";
    }
    case "provenance": {
      const input = c.input as ProvenanceCase;
      // A request whose wording the guard already recognises is blocked before any model sees it.
      try {
        guardRequest(input.request, { maxChars: 4000, scope: DEFAULT_POLICY.scope });
      } catch (e) {
        expect(e, c.id).toBeInstanceOf(BlockedRequestError);
        return (e as BlockedRequestError).reason;
      }
      return obeyingRun(input);
    }
    case "edit": {
      const { tool, args, edit } = c.input as { tool: string; args: unknown; edit: Record<string, unknown> };
      expect(() => checkEditedArgs([{ tool_call_id: "x", tool, args, risk: "high" }], edit)).toThrow(
        /edited arguments for send_message are not valid/,
      );
      return "invalid_edit";
    }
  }
}

describe("adversarial corpus", () => {
  it("has at least 300 cases of every required kind, and every attack class among the requests", () => {
    expect(CASES.length).toBeGreaterThanOrEqual(300);
    const classes = new Set(
      CASES.filter((c) => c.kind === "request").map((c) =>
        String(c.expect.blocked).replace(/^injection:/, ""),
      ),
    );
    for (const reason of [
      "instruction_override",
      "role_play",
      "system_prompt_extraction",
      "authority_claim",
      "approval_bypass",
      "role_markup",
      "tool_call_smuggling",
      "data_exfiltration",
      "encoded_payload",
      "hidden_text",
    ])
      expect(classes, reason).toContain(reason);
    expect(CASES.filter((c) => c.kind === "provenance").length).toBeGreaterThanOrEqual(25);
    expect(new Set(CASES.map((c) => c.kind))).toEqual(
      new Set(["request", "tool_output", "sandbox", "sql", "foreign_tool", "edit", "provenance"]),
    );
    expect(new Set(CASES.map((c) => c.id)).size).toBe(CASES.length);
  });

  it.each(CASES.map((c) => [c.id, c] as const))("%s is handled with a named reason", async (_id, c) => {
    const count = handled.get(c.kind) ?? { total: 0, handled: 0 };
    handled.set(c.kind, count);
    count.total++;
    const reason = await handle(c);
    expect(reason).toBeTruthy();
    count.handled++;
  });

  it("left the data untouched: no write or DDL got through", async () => {
    const { rows } = await t.db.pool.query<{
      tables: number;
      orders: number;
      regions: number;
      price0: number;
    }>(
      `select (select count(*)::int from information_schema.tables where table_schema = 'demo') as tables,
              (select count(*)::int from demo.orders) as orders,
              (select count(*)::int from demo.regions where id = 99) as regions,
              (select count(*)::int from demo.products where unit_price = 0) as price0`,
    );
    expect(rows[0]).toEqual({ tables: 5, orders: expect.any(Number) as number, regions: 0, price0: 0 });
    expect(rows[0]!.orders).toBeGreaterThan(0);
  });
});

describe("benign set", () => {
  it("blocks at most 2% of at least 150 normal requests, trigger words included", () => {
    expect(BENIGN.length).toBeGreaterThanOrEqual(150);
    const blocked = BENIGN.flatMap((b) => {
      try {
        guardRequest(b.request, { maxChars: 4000, scope: DEFAULT_POLICY.scope });
        return [];
      } catch (error) {
        return [`${b.id} "${b.request}": ${(error as Error).message}`];
      }
    });
    console.log(
      `benign set: ${BENIGN.length} requests, ${blocked.length} blocked, false-positive rate ${((100 * blocked.length) / BENIGN.length).toFixed(1)}%`,
    );
    expect(blocked.length, blocked.join("\n")).toBeLessThanOrEqual(Math.floor(BENIGN.length * 0.02));
  });

  it("leaves the recipients the requester named alone (no provenance escalation)", () => {
    const named = BENIGN.flatMap((b) =>
      [...b.request.matchAll(/[\w.+-]+@[\w-]+\.[\w.]+/g)].map((m) => ({ b, to: m[0] })),
    );
    expect(named.length).toBeGreaterThanOrEqual(10);
    const escalated = named.filter(
      ({ b, to }) => provenanceOf(to, "email", splitInstruction(b.request), []) !== undefined,
    );
    expect(escalated.map(({ b }) => b.id)).toEqual([]);
  });

  it("flags none of the bundled knowledge-base documents as injected", async () => {
    const { rows } = await t.db.pool.query<{ id: string; title: string; body: string }>(
      "select id, title, body from kb_documents",
    );
    expect(rows.length).toBeGreaterThan(0);
    const flagged = rows.filter((doc) => guardToolOutput(doc).event).map((d) => d.id);
    expect(flagged).toEqual([]);
  });
});
