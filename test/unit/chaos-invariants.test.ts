import type pg from "pg";
import { describe, expect, it } from "vitest";
import type { TaskRow } from "../../runtime/task/store.js";
import { checkInvariants, type HistoryEvent } from "../chaos/harness.js";

/** The chaos checker flags each kind of violation (a checker that cannot fail would prove nothing). */
function fakePool(rows: {
  outboxTwice?: object[];
  sends?: object[];
  withdrawn?: object[];
  compensated?: object[];
  children?: object[];
}) {
  return {
    query: (sql: string) =>
      Promise.resolve({
        rows: sql.includes("'compensated'")
          ? (rows.compensated ?? [])
          : sql.includes("having count(*) > 1")
            ? (rows.outboxTwice ?? [])
            : sql.includes("group by thread_id")
              ? (rows.sends ?? [])
              : sql.includes("withdrawn")
                ? (rows.withdrawn ?? [])
                : (rows.children ?? []),
      }),
  } as unknown as pg.Pool;
}
const task = (id: string, status: string, extra: Partial<TaskRow> = {}) =>
  ({ id, status, error_reason: null, last_error: null, ...extra }) as TaskRow;
const acked = (...ids: string[]): HistoryEvent[] => ids.map((id) => ({ at: 0, type: "ack", task: id }));

describe("chaos invariants", () => {
  it("passes a clean run", async () => {
    expect(await checkInvariants(fakePool({}), acked("a"), [task("a", "done")])).toEqual([]);
  });

  it("flags a lost task, an unfinished one, an effect twice, an undone approval or effect, unnamed failures, unsettled children", async () => {
    const violations = await checkInvariants(
      fakePool({
        outboxTwice: [{ thread_id: "b", tool_call_id: "c1", n: 2 }],
        sends: [{ thread_id: "b", n: 2 }],
        withdrawn: [{ thread_id: "c", approved_by: "ana" }],
        compensated: [{ thread_id: "c", tool: "send_message" }],
        children: [{ id: "c.t1", root_id: "c", status: "running" }],
      }),
      acked("gone", "b", "c", "d", "e"),
      [
        task("b", "running"),
        task("c", "failed", { error_reason: "lease_expired", last_error: "lost" }),
        task("d", "failed"),
        task("e", "failed", { error_reason: "internal", last_error: "TypeError: x" }),
      ],
    );
    expect(violations).toEqual([
      "lost: task gone was acknowledged and is gone",
      "unfinished: task b is running",
      "effect twice: 2 outbox rows for b c1",
      "effect twice: task b queued 2 messages for one request",
      "approved effect undone: task c (failed lease_expired)",
      "effect undone: send_message of task c (failed lease_expired)",
      "unnamed failure: task d (no reason)",
      "unclassified failure: task e: TypeError: x",
      "child unsettled: c.t1 of c is running",
    ]);
  });
});
