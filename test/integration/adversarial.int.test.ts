import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TOOLS } from "../../agents/index.js";
import type { AgentType } from "../../agents/contracts.js";
import { checkEditedArgs } from "../../graphs/approval.js";
import { BlockedRequestError, guardRequest, guardToolOutput } from "../../policy/guard.js";
import { DEFAULT_POLICY } from "../../policy/file.js";
import { executeTool } from "../../tools/contract.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";
import { toolContext } from "../helpers/tools.js";

/**
 * The adversarial corpus (test/fixtures/adversarial.jsonl) and the benign set (test/fixtures/benign.jsonl).
 * Every adversarial case must be handled — blocked, neutralised, refused or failed closed, with a named
 * reason — and no benign request may be blocked. The suite prints its counts and the false-positive rate.
 */
interface Case {
  id: string;
  kind: "request" | "tool_output" | "sandbox" | "sql" | "foreign_tool" | "edit";
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
beforeAll(async () => {
  t = await createTestDatabase({ KEEL_SQL_TIMEOUT_MS: "500", KEEL_SANDBOX_TIMEOUT_MS: "300" });
});
const handled = new Map<string, { total: number; handled: number }>();
afterAll(async () => {
  const rows = [...handled.entries()].map(([kind, c]) => `${kind.padEnd(13)} ${c.handled}/${c.total}`);
  console.log(`adversarial corpus: ${CASES.length} cases\n  ${rows.join("\n  ")}`);
  await t?.drop();
});

const ctx = (agent: AgentType) => toolContext(t.db.pool, t.config.limits, { threadId: "adversarial", agent });

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
  it("has at least 100 cases of every required kind", () => {
    expect(CASES.length).toBeGreaterThanOrEqual(100);
    expect(new Set(CASES.map((c) => c.kind))).toEqual(
      new Set(["request", "tool_output", "sandbox", "sql", "foreign_tool", "edit"]),
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
  it("blocks none of at least 50 normal requests (false-positive rate 0%)", () => {
    expect(BENIGN.length).toBeGreaterThanOrEqual(50);
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
    expect(blocked).toEqual([]);
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
