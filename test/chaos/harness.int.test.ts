import { describe, expect, it } from "vitest";
import { MODEL_FAULTS } from "../fakes/chaos-model-server.js";
import { PROFILES, runChaos } from "./harness.js";

/**
 * The chaos harness's short profile (`npm run chaos` runs the full one): worker SIGKILLs, a Postgres restart and
 * injected model faults, then the invariants. Bounded by the profile's deadline.
 */
describe("chaos harness, short profile", () => {
  it("ends with every invariant holding", async () => {
    const result = await runChaos(PROFILES.short);
    expect(result.violations).toEqual([]);
    expect(result.kills).toBe(PROFILES.short.kills);
    expect(result.postgresRestarts).toBe(PROFILES.short.postgresRestarts);
    expect(result.tasks).toBe(PROFILES.short.tasks);
    // Faults were really injected, and the run was recorded from submit to end.
    expect(Object.values(result.faults).reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
    expect(Object.keys(result.faults)).toEqual([...MODEL_FAULTS]);
    const types = new Set(result.history.map((e) => e.type));
    for (const type of ["submit", "ack", "kill", "postgres_restart", "end"] as const)
      expect(types).toContain(type);
    expect(result.history.filter((e) => e.type === "end")).toHaveLength(PROFILES.short.tasks);
  }, 240_000);
});
