import { createTrajectoryMatchEvaluator } from "agentevals";
import type pg from "pg";
import { releaseLabel } from "../runtime/releases/store.js";
import { getRelease } from "../runtime/releases/store.js";

/** One side of a dual run: what a request did on one release. */
export interface DualRunSide {
  task_id: string;
  release: string | null;
  status: string;
  final_answer: string | null;
  latency_ms: number | null;
  cost_usd: number;
  tools: { tool: string; args: unknown; status: string }[];
  decisions: { tool: string; decision: string }[];
}

/** A request run by the primary and, with its effects simulated, by the shadow's candidate. */
export interface DualRunEntry {
  request: string;
  primary: DualRunSide;
  shadow: DualRunSide & { simulated: { tool: string; args: unknown; decision: string; reasons: string[] }[] };
  /** Both finished: the primary done or waiting for a person, the shadow done; or both failed. */
  settled: boolean;
  same_outcome: boolean | null;
  /** agentevals' trajectory match of the shadow's tool calls against the primary's, in each mode. */
  trajectory: Record<(typeof MODES)[number], boolean> | null;
  /** What the shadow did worse, in words. */
  regressions: string[];
}

const MODES = ["strict", "unordered", "subset", "superset"] as const;
const DECISION_RANK: Record<string, number> = {
  autonomous: 0,
  logged: 1,
  async_approval: 2,
  sync_approval: 3,
};

interface Row {
  id: string;
  request: string | null;
  status: string;
  release_id: string | null;
  final_answer: string | null;
  error_reason: string | null;
  created_at: Date;
  finished_at: Date | null;
}

/**
 * The dual-run report: every shadowed request since `since`, primary beside shadow — outcome, trajectory match
 * (agentevals), cost, latency, policy decisions and the effects the shadow would have had — and, over the pairs
 * that settled, the rates and the regressions (`keel shadow report` exits 1 on one, as `keel eval --baseline`).
 */
export async function dualRunReport(db: pg.Pool, options: { since?: Date; limit?: number } = {}) {
  const { rows: pairs } = await db.query<{ primary: Row; shadow: Row }>(
    `select to_jsonb(p) as primary, to_jsonb(s) as shadow
       from tasks s join tasks p on p.id = s.shadow_of
      where s.parent_id is null and ($1::timestamptz is null or s.created_at >= $1)
      order by s.created_at desc limit $2`,
    [options.since ?? null, options.limit ?? 200],
  );
  const labels = new Map<string, string>();
  const label = async (id: string | null) => {
    if (!id) return null;
    if (!labels.has(id)) labels.set(id, releaseLabel(await getRelease(db, id)));
    return labels.get(id)!;
  };
  const side = async (row: Row): Promise<DualRunSide> => {
    const [tools, decisions, usage] = await Promise.all([
      db.query<{ tool: string; args: unknown; status: string }>(
        `select name as tool, input as args, status from trajectory_steps
          where thread_id = $1 and kind = 'tool_call' order by started_at, id`,
        [row.id],
      ),
      db.query<{ tool: string; decision: string }>(
        "select tool, decision from policy_decisions where thread_id = $1 order by id",
        [row.id],
      ),
      db.query<{ cost: number }>(
        "select coalesce(sum(cost_usd), 0)::float8 as cost from task_usage where thread_id = $1",
        [row.id],
      ),
    ]);
    return {
      task_id: row.id,
      release: await label(row.release_id),
      status: row.status,
      final_answer: row.final_answer,
      latency_ms: row.finished_at
        ? new Date(row.finished_at).getTime() - new Date(row.created_at).getTime()
        : null,
      cost_usd: usage.rows[0]?.cost ?? 0,
      tools: tools.rows,
      decisions: decisions.rows,
    };
  };
  const entries: DualRunEntry[] = [];
  for (const pair of pairs) {
    const primary = await side(pair.primary);
    const shadowSide = await side(pair.shadow);
    const { rows: simulated } = await db.query<{
      tool: string;
      args: unknown;
      decision: string;
      reasons: string[];
    }>("select tool, args, decision, reasons from simulated_effects where thread_id = $1 order by id", [
      pair.shadow.id,
    ]);
    const shadow = { ...shadowSide, simulated };
    const primaryOk = primary.status === "done" || primary.status === "waiting_for_approval";
    const primaryEnded = primaryOk || primary.status === "failed" || primary.status === "cancelled";
    const shadowEnded = ["done", "failed", "cancelled"].includes(shadow.status);
    const settled = primaryEnded && shadowEnded;
    const regressions: string[] = [];
    let trajectory: DualRunEntry["trajectory"] = null;
    if (settled) {
      if (primaryOk && shadow.status !== "done")
        regressions.push(
          `the shadow ${shadow.status} (${pair.shadow.error_reason ?? "?"}) where the primary succeeded`,
        );
      for (const d of shadow.decisions) {
        const before = primary.decisions.find((p) => p.tool === d.tool);
        if (before && (DECISION_RANK[d.decision] ?? 0) < (DECISION_RANK[before.decision] ?? 0))
          regressions.push(`${d.tool} would be decided ${d.decision} (the primary: ${before.decision})`);
      }
      trajectory = await matchAll(shadow.tools, primary.tools);
    }
    entries.push({
      request: pair.primary.request ?? "",
      primary,
      shadow,
      settled,
      same_outcome: settled ? primaryOk === (shadow.status === "done") : null,
      trajectory,
      regressions,
    });
  }
  const done = entries.filter((e) => e.settled);
  const rate = (n: number) => (done.length ? n / done.length : null);
  const cost = (f: (e: DualRunEntry) => number) => done.reduce((n, e) => n + f(e), 0);
  const summary = {
    pairs: entries.length,
    settled: done.length,
    same_outcome_rate: rate(done.filter((e) => e.same_outcome).length),
    trajectory_match_rate: Object.fromEntries(
      MODES.map((m) => [m, rate(done.filter((e) => e.trajectory?.[m]).length)]),
    ) as Record<(typeof MODES)[number], number | null>,
    cost_usd: { primary: cost((e) => e.primary.cost_usd), shadow: cost((e) => e.shadow.cost_usd) },
    simulated_effects: done.reduce((n, e) => n + e.shadow.simulated.length, 0),
    regressions: done.flatMap((e) => e.regressions.map((r) => `request "${e.request.slice(0, 60)}": ${r}`)),
  };
  return { summary, entries };
}

async function matchAll(
  actual: DualRunSide["tools"],
  reference: DualRunSide["tools"],
): Promise<Record<(typeof MODES)[number], boolean>> {
  const asMessages = (calls: DualRunSide["tools"]) =>
    calls.map((c) => ({
      role: "assistant" as const,
      content: "",
      tool_calls: [{ function: { name: c.tool, arguments: JSON.stringify(c.args ?? {}) } }],
    }));
  const out = {} as Record<(typeof MODES)[number], boolean>;
  for (const mode of MODES) {
    const evaluator = createTrajectoryMatchEvaluator({
      trajectoryMatchMode: mode,
      toolArgsMatchMode: "ignore",
    });
    const result = (await evaluator({
      outputs: asMessages(actual),
      referenceOutputs: asMessages(reference),
    })) as {
      score: boolean | number;
    };
    out[mode] = result.score === true || result.score === 1;
  }
  return out;
}
