import type pg from "pg";
import { TOOLS } from "../agents/index.js";
import { compensateThread, type CompensationReport } from "../tools/ledger.js";
import type { GraphDeps } from "./deps.js";

/**
 * Undoes a run's committed reversible effects, newest first, with every tool's own `compensate` (the saga's
 * backward path). Called by a worker when a task tree finally fails or is cancelled.
 */
export function compensateRun(
  pool: pg.Pool,
  threadId: string,
  deps: Pick<GraphDeps, "limits" | "dependencies">,
): Promise<CompensationReport[]> {
  return compensateThread(pool, threadId, TOOLS, {
    db: () => Promise.resolve(pool),
    signal: AbortSignal.timeout(60_000),
    limits: deps.limits,
    dependencies: deps.dependencies,
  });
}
