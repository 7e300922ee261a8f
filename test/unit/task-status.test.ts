import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  canTransition,
  IllegalTransitionError,
  TASK_STATUSES,
  assertTransition,
  type TaskStatus,
} from "../../runtime/task/rules.js";

const LEGAL: [TaskStatus, TaskStatus][] = [
  ["queued", "running"],
  ["running", "waiting_for_approval"],
  ["running", "done"],
  ["running", "failed"],
  ["running", "queued"],
  ["waiting_for_approval", "running"],
  ["waiting_for_approval", "failed"],
  ["failed", "queued"],
  ["queued", "cancelled"],
  ["running", "cancelled"],
  ["waiting_for_approval", "cancelled"],
];
const isLegal = (from: TaskStatus, to: TaskStatus) => LEGAL.some(([f, t]) => f === from && t === to);

describe("task state machine", () => {
  it.each(LEGAL)("allows %s -> %s", (from, to) => {
    expect(canTransition(from, to)).toBe(true);
    expect(() => assertTransition("t", from, to)).not.toThrow();
  });

  it("refuses every other pair, for any pair of statuses", () => {
    const status = fc.constantFrom(...TASK_STATUSES);
    fc.assert(
      fc.property(status, status, (from, to) => {
        expect(canTransition(from, to)).toBe(isLegal(from, to));
        if (!isLegal(from, to)) expect(() => assertTransition("t", from, to)).toThrow(IllegalTransitionError);
      }),
    );
  });

  it("keeps terminal states terminal along any walk of legal moves", () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...TASK_STATUSES), { maxLength: 30 }), (attempts) => {
        let current: TaskStatus = "queued";
        for (const next of attempts) {
          if (canTransition(current, next)) current = next;
        }
        if (current === "done" || current === "cancelled") {
          expect(TASK_STATUSES.filter((s) => canTransition(current, s))).toEqual([]);
        }
      }),
    );
  });
});
