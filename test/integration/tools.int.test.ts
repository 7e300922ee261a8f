import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { configureAuditLog } from "../../observability/audit.js";
import { executeTool, type KeelTool } from "../../tools/contract.js";
import { TOOLS } from "../../agents/index.js";
import { toolContext } from "../helpers/tools.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  await t?.drop();
});

const tool = (name: string): KeelTool => TOOLS.get(name)!;
// Each tool is called as the agent it belongs to; the contract refuses any other.
const call = (name: string, args: unknown, id = "t1/call_1") =>
  executeTool(
    tool(name),
    args,
    toolContext(
      t.db.pool,
      { ...t.config.limits, sqlRowLimit: 5, sqlTimeoutMs: 300 },
      {
        toolCallId: id,
        agent: tool(name).agents[0]!,
      },
    ),
  );

describe("research tools", () => {
  it("finds a document by full-text search, ranked, and reads it", async () => {
    const found = await call("search_kb", { query: "how fast do orders ship" });
    expect(found.status).toBe("ok");
    const hits = (found as { output: { hits: { id: string }[] } }).output.hits;
    expect(hits[0]!.id).toBe("policy-shipping");
    const doc = await call("read_document", { id: "policy-shipping" });
    expect(doc).toMatchObject({ status: "ok", output: { title: "Shipping Policy" } });
    expect((doc as { output: { body: string } }).output.body).toContain("3 to 5 business days");
  });

  it("tells the agent when a document id does not exist", async () => {
    const outcome = await call("read_document", { id: "no-such-doc" });
    expect(outcome).toMatchObject({
      status: "error",
      error: expect.stringMatching(/No document has id "no-such-doc"/),
    });
  });
});

describe("data tools", () => {
  it("lists and describes the dataset's tables", async () => {
    const tables = await call("list_tables", {});
    const names = (tables as { output: { tables: { name: string; rows: number }[] } }).output.tables;
    expect(names.map((x) => x.name)).toEqual(["customers", "order_items", "orders", "products", "regions"]);
    expect(names.find((x) => x.name === "regions")!.rows).toBe(4);
    const described = await call("describe_table", { table: "orders" });
    expect(
      (described as { output: { columns: { name: string }[] } }).output.columns.map((c) => c.name),
    ).toEqual(["id", "customer_id", "ordered_at", "status"]);
  });

  it("runs a read-only query and caps the rows", async () => {
    const outcome = await call("run_sql", { sql: "select id from orders order by id" });
    expect(outcome).toMatchObject({
      status: "ok",
      output: { row_count: 5, truncated: true, columns: ["id"] },
    });
  });

  it.each([
    ["an insert", "insert into regions values (9, 'Nowhere', 'x')", /read-only/],
    ["a delete", "DELETE FROM orders", /read-only/],
    [
      "a write hidden in a CTE",
      "with x as (insert into regions values (9, 'N', 'x') returning *) select * from x",
      /read-only/,
    ],
    ["a second statement", "select 1; drop table orders", /exactly one statement/],
    ["a transaction escape", "commit", /read-only/],
  ])("refuses %s and changes nothing", async (_label, sql, message) => {
    const outcome = await call("run_sql", { sql });
    expect(outcome.status).toBe("error");
    expect(outcome.content).toMatch(message);
    const { rows } = await t.db.pool.query(
      "select (select count(*) from demo.regions) as regions, (select count(*) from demo.orders) as orders",
    );
    expect(rows[0]).toMatchObject({ regions: "4" });
    expect(Number(rows[0].orders)).toBeGreaterThan(0);
  });

  it("cancels a query that runs past the statement timeout", async () => {
    const outcome = await call("run_sql", { sql: "select pg_sleep(5)" });
    expect(outcome).toMatchObject({ status: "error", error: expect.stringMatching(/longer than 300 ms/) });
  });

  it("returns SQL errors to the agent", async () => {
    const outcome = await call("run_sql", { sql: "select nope from orders" });
    expect(outcome.content).toMatch(/SQL error: column "nope" does not exist/);
  });

  it("refuses an unknown table", async () => {
    expect((await call("describe_table", { table: "salaries" })).content).toMatch(/no table "salaries"/);
  });
});

describe("communication tools", () => {
  it("drafts without writing anything", async () => {
    const outcome = await call("draft_message", { to: "a@harbor.example", subject: "Hi", body: "Hello" });
    expect(outcome).toMatchObject({
      status: "ok",
      output: { preview: "To: a@harbor.example\nSubject: Hi\n\nHello" },
    });
    const { rows } = await t.db.pool.query(
      "select count(*)::int as n from outbox where thread_id = 'tools-test'",
    );
    expect(rows[0].n).toBe(0);
  });

  it("writes one outbox row per tool call, even when the call runs again", async () => {
    const args = { to: "ops@harbor.example", subject: "Status", body: "All good" };
    const first = await call("send_message", args, "t9/call_send");
    const again = await call("send_message", args, "t9/call_send");
    expect(first).toMatchObject({ status: "ok" });
    expect((again as { output: unknown }).output).toEqual((first as { output: unknown }).output);
    const { rows } = await t.db.pool.query(
      "select recipient from outbox where tool_call_id = 't9/call_send'",
    );
    expect(rows).toEqual([{ recipient: "ops@harbor.example" }]);
  });

  it("refuses an invalid address as a validation error", async () => {
    const outcome = await call("send_message", { to: "not-an-address", subject: "x", body: "y" });
    expect(outcome).toMatchObject({
      status: "invalid_arguments",
      content: expect.stringMatching(/to: Invalid email/),
    });
  });
});

describe("tool call log", () => {
  it("records every call with its status", async () => {
    const { rows } = await t.db.pool.query<{ status: string }>(
      "select distinct status from tool_calls where thread_id = 'tools-test'",
    );
    expect(rows.map((r) => r.status).sort()).toEqual(["error", "invalid_arguments", "ok"]);
  });
});

describe("the audit trail of an effect", () => {
  it("commits a send's tool-call row with its effect, and writes neither when the row cannot be written", async () => {
    const audit: string[] = [];
    configureAuditLog({ logLevel: undefined }, { write: (line: string) => audit.push(line) });
    const args = { to: "ops@harbor.example", subject: "Audit", body: "Both or neither" };
    const sent = await call("send_message", args, "t10/call_send");
    expect(sent).toMatchObject({ status: "ok" });
    const row = await t.db.pool.query("select status from tool_calls where tool_call_id = 't10/call_send'");
    expect(row.rows).toEqual([{ status: "ok" }]);

    // A store that refuses this call's row: the message must not be sent without its audit row.
    await t.db.pool.query(`
      create function refuse_audit() returns trigger language plpgsql as $$
        begin
          if new.tool_call_id = 't11/call_send' then raise exception 'audit store unavailable'; end if;
          return new;
        end $$;
      create trigger refuse_audit before insert on trajectory_steps for each row execute function refuse_audit();`);
    try {
      const refused = await call("send_message", args, "t11/call_send");
      expect(refused).toMatchObject({
        status: "error",
        error: expect.stringMatching(/audit store unavailable/),
      });
      const outbox = await t.db.pool.query(
        "select count(*)::int as n from outbox where tool_call_id = 't11/call_send'",
      );
      expect(outbox.rows[0].n).toBe(0);
      // The failed call's own row could not be written either: that is logged with the task and the tool.
      const failures = audit.map((line) => JSON.parse(line) as Record<string, unknown>);
      expect(failures).toContainEqual(
        expect.objectContaining({
          name: "keel-audit",
          what: "trajectory tool_call send_message",
          task_id: "tools-test",
          tool: "send_message",
          error: expect.stringMatching(/audit store unavailable/),
        }),
      );
    } finally {
      await t.db.pool.query("drop trigger refuse_audit on trajectory_steps; drop function refuse_audit()");
      configureAuditLog({ logLevel: undefined });
    }
  });
});
