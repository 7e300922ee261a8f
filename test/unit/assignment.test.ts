import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { bucketOf, getsCandidate, parseSteps, type RolloutStep } from "../../runtime/releases/assign.js";

const KEYS = Array.from({ length: 10_000 }, (_, i) => `submitter-${i}`);
const LADDER: RolloutStep[] = [
  { cohort: ["alice", "ops-team"] },
  { percent: 1 },
  { percent: 10 },
  { percent: 50 },
  { percent: 100 },
];

describe("rollout assignment", () => {
  // 10,000 keys at share p: the count on the candidate is binomial, sd = sqrt(n p (1-p)) ≤ 50 keys (0.5 points).
  // The tolerance, 1.5 percentage points, is three of those at p = 50% and more at the other steps.
  it.each([1, 2, 3, 4])("matches step %i's weight within 1.5 percentage points over 10,000 keys", (index) => {
    const step = LADDER[index] as { percent: number };
    for (const salt of ["a1b2c3", "ffff0000", "rollout-3"]) {
      const share = (100 * KEYS.filter((k) => getsCandidate(LADDER, index, salt, k)).length) / KEYS.length;
      expect(Math.abs(share - step.percent)).toBeLessThanOrEqual(1.5);
    }
  });

  it("is sticky, monotone from step to step, and keeps the cohort on the candidate", () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1 }), fc.string(), (key, salt) => {
        const at = LADDER.map((_, i) => getsCandidate(LADDER, i, salt, key));
        // Asked again, the same answer.
        expect(LADDER.map((_, i) => getsCandidate(LADDER, i, salt, key))).toEqual(at);
        // Once on the candidate, on it at every later step; everyone at 100%.
        for (let i = 1; i < at.length; i++) if (at[i - 1]) expect(at[i]).toBe(true);
        expect(at.at(-1)).toBe(true);
      }),
      { numRuns: 2000 },
    );
    for (const member of ["alice", "ops-team"])
      expect(LADDER.map((_, i) => getsCandidate(LADDER, i, "s", member))).toEqual([
        true,
        true,
        true,
        true,
        true,
      ]);
    expect(getsCandidate(LADDER, 0, "s", "bob")).toBe(false);
  });

  it("assigns independently in two rollouts (the salt), and spreads keys over every bucket", () => {
    const a = KEYS.filter((k) => bucketOf("one", k) < 1000);
    const both = a.filter((k) => bucketOf("two", k) < 1000).length;
    // Independent 10% shares overlap on about 1% of keys (100 of 10,000), not on the same 10%.
    expect(both).toBeGreaterThan(50);
    expect(both).toBeLessThan(200);
    const buckets = KEYS.map((k) => bucketOf("one", k));
    expect(Math.min(...buckets)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...buckets)).toBeLessThan(10_000);
  });
});

describe("--steps", () => {
  it("reads a cohort and rising percents", () => {
    expect(parseSteps("cohort:alice, bob; 1; 10%; 100")).toEqual([
      { cohort: ["alice", "bob"] },
      { percent: 1 },
      { percent: 10 },
      { percent: 100 },
    ]);
  });

  it.each([
    ["", /at least one step/],
    ["10;5;100", /must rise: 5% comes after 10%/],
    ["10;50", /last step must be 100%/],
    ["1;cohort:a;100", /cohort step may only come first/],
    ["cohort:", /names no keys/],
    ["0;100", /percent above 0/],
    ["ten;100", /"ten" is not a step/],
    ["150", /percent above 0 and up to 100/],
  ])("refuses %j", (text, message) => {
    expect(() => parseSteps(text)).toThrow(message);
  });
});
