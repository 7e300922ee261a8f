import type pg from "pg";
import type { KeelConfig } from "../../core/config.js";
import type { ToolContext } from "../../tools/context.js";

/** A tool context on a test database, as a sub-agent would build it; `overrides` set what a test is about. */
export function toolContext(
  pool: pg.Pool,
  limits: KeelConfig["limits"],
  overrides: Partial<ToolContext> & Pick<ToolContext, "agent">,
): ToolContext {
  return {
    db: () => Promise.resolve(pool),
    signal: new AbortController().signal,
    threadId: "tools-test",
    toolCallId: "t1/call_1",
    limits,
    ...overrides,
  };
}
