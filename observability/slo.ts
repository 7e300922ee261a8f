import type pg from "pg";
import type { SloTargets } from "../policy/slo-targets.js";

export type SloName =
  | "task_success_rate"
  | "p95_time_to_first_token"
  | "p95_time_to_completion"
  | "tool_call_error_rate"
  | "human_escalation_rate"
  | "cost_per_successful_task";

/** One service-level indicator over the window, against its target. */
export interface SloResult {
  name: SloName;
  /** The measured value: a fraction for rates, seconds for times, USD for cost; null without data. */
  value: number | null;
  target: number;
  /** Whether the value must stay above (success) or below (everything else) the target. */
  direction: "above" | "below";
  unit: "ratio" | "seconds" | "usd";
  /** How many tasks (or tool calls) the value is computed from. */
  sample_size: number;
  status: "met" | "breached" | "no_data";
  /** How the value is computed, in words. */
  definition: string;
}

export interface SloReport {
  since: string;
  until: string;
  workflow: string | null;
  /** Only the tasks of this release (`name@version`), when asked for. */
  release: string | null;
  tasks: {
    total: number;
    done: number;
    failed: number;
    cancelled: number;
    waiting: number;
    unfinished: number;
  };
  results: SloResult[];
  breached: SloName[];
}

interface Counts {
  total: number;
  done: number;
  failed: number;
  cancelled: number;
  waiting: number;
  escalated: number;
  cost_usd: number;
  ttft_n: number;
  ttft_p95_ms: number | null;
  ttc_n: number;
  ttc_p95_ms: number | null;
  tool_calls: number;
  tool_errors: number;
}

// One statement over the root tasks submitted in the window. Percentiles are nearest-rank (percentile_disc), so
// each one is a value that was actually observed.
const QUERY = `
with roots as (
  select t.id, t.status, t.created_at, t.finished_at
    from tasks t
   where t.parent_id is null and t.created_at >= $1 and t.created_at < $2 and (case when $3::text is null then t.workflow not in ('eval', 'shadow') else t.workflow = $3 end)
     and ($4::uuid is null or t.release_id = $4)
),
first_output as (
  select r.id, min(s.started_at + make_interval(secs => coalesce(s.first_token_ms, s.duration_ms) / 1000.0)) as at
    from roots r join trajectory_steps s on s.thread_id = r.id::text and s.kind = 'model_call' and s.status = 'ok'
   group by r.id
),
waits as (
  select e.task_id, sum(extract(epoch from (coalesce(e.next_at, now()) - e.at))) * 1000 as waited_ms
    from (select task_id, to_status, at, lead(at) over (partition by task_id order by id) as next_at
            from task_events where task_id in (select id from roots)) e
   where e.to_status = 'waiting_for_approval'
   group by e.task_id
),
completion as (
  select extract(epoch from (r.finished_at - r.created_at)) * 1000 - coalesce(w.waited_ms, 0) as ms
    from roots r left join waits w on w.task_id = r.id
   where r.status = 'done' and r.finished_at is not null
),
tools as (
  select count(*)::int as calls,
         count(*) filter (where s.status in ('error', 'invalid_arguments', 'refused'))::int as errors
    from trajectory_steps s where s.kind = 'tool_call' and s.thread_id in (select id::text from roots)
)
select
  (select count(*)::int from roots) as total,
  (select count(*)::int from roots where status = 'done') as done,
  (select count(*)::int from roots where status = 'failed') as failed,
  (select count(*)::int from roots where status = 'cancelled') as cancelled,
  (select count(*)::int from roots where status = 'waiting_for_approval') as waiting,
  (select count(*)::int from roots r
     where r.status in ('done', 'failed', 'waiting_for_approval')
       and exists (select 1 from approvals a join tasks c on c.id = a.task_id where c.root_id = r.id)) as escalated,
  (select coalesce(sum(u.cost_usd), 0)::float8 from task_usage u
     where u.thread_id in (select id::text from roots where status in ('done', 'failed'))) as cost_usd,
  (select count(*)::int from first_output) as ttft_n,
  (select percentile_disc(0.95) within group (order by extract(epoch from (f.at - r.created_at)) * 1000)::float8
     from first_output f join roots r on r.id = f.id) as ttft_p95_ms,
  (select count(*)::int from completion) as ttc_n,
  (select percentile_disc(0.95) within group (order by ms)::float8 from completion) as ttc_p95_ms,
  (select calls from tools) as tool_calls,
  (select errors from tools) as tool_errors`;

function judge(value: number | null, target: number, direction: "above" | "below", n: number) {
  if (n === 0 || value === null) return "no_data" as const;
  const met = direction === "above" ? value >= target : value <= target;
  return met ? ("met" as const) : ("breached" as const);
}

/**
 * Computes the service-level scorecard from the task store and the trajectory store over [since, until), for
 * one workflow or all but eval and shadow runs (which count only when asked for by name). Only root tasks (requests) count;
 * a request's sub-agents are part of it.
 */
export async function computeSlo(
  db: Pick<pg.Pool, "query">,
  targets: SloTargets,
  options: { since: Date; until?: Date; workflow?: string; release?: { id: string; label: string } },
): Promise<SloReport> {
  const until = options.until ?? new Date();
  const c = (
    await db.query<Counts>(QUERY, [
      options.since,
      until,
      options.workflow ?? null,
      options.release?.id ?? null,
    ])
  ).rows[0]!;
  const finished = c.done + c.failed;
  const settled = finished + c.waiting;
  const results: SloResult[] = [];
  const add = (r: Omit<SloResult, "status">) =>
    results.push({ ...r, status: judge(r.value, r.target, r.direction, r.sample_size) });

  add({
    name: "task_success_rate",
    value: finished ? c.done / finished : null,
    target: targets.task_success_rate,
    direction: "above",
    unit: "ratio",
    sample_size: finished,
    definition:
      "done / (done + failed) among requests submitted in the window; cancelled ones are not counted",
  });
  add({
    name: "p95_time_to_first_token",
    value: c.ttft_p95_ms === null ? null : c.ttft_p95_ms / 1000,
    target: targets.p95_time_to_first_token_seconds,
    direction: "below",
    unit: "seconds",
    sample_size: c.ttft_n,
    definition:
      "p95 (nearest rank) from submit to the first output of the request's first successful model call (its first streamed token when the model streams)",
  });
  add({
    name: "p95_time_to_completion",
    value: c.ttc_p95_ms === null ? null : c.ttc_p95_ms / 1000,
    target: targets.p95_time_to_completion_seconds,
    direction: "below",
    unit: "seconds",
    sample_size: c.ttc_n,
    definition:
      "p95 (nearest rank) from submit to done over done requests, minus time spent waiting for a person",
  });
  add({
    name: "tool_call_error_rate",
    value: c.tool_calls ? c.tool_errors / c.tool_calls : null,
    target: targets.tool_call_error_rate,
    direction: "below",
    unit: "ratio",
    sample_size: c.tool_calls,
    definition:
      "tool calls that failed, had invalid arguments or were refused / all tool calls (a person's rejection is not an error)",
  });
  add({
    name: "human_escalation_rate",
    value: settled ? c.escalated / settled : null,
    target: targets.human_escalation_rate,
    direction: "below",
    unit: "ratio",
    sample_size: settled,
    definition: "requests that asked a person at least once / requests done, failed or waiting for approval",
  });
  const costPerSuccess = c.done ? c.cost_usd / c.done : c.cost_usd > 0 ? Number.MAX_VALUE : null;
  add({
    name: "cost_per_successful_task",
    value: costPerSuccess,
    target: targets.cost_per_successful_task_usd,
    direction: "below",
    unit: "usd",
    sample_size: finished,
    definition: "model cost of all done and failed requests / the number done",
  });
  return {
    since: options.since.toISOString(),
    until: until.toISOString(),
    workflow: options.workflow ?? null,
    release: options.release?.label ?? null,
    tasks: {
      total: c.total,
      done: c.done,
      failed: c.failed,
      cancelled: c.cancelled,
      waiting: c.waiting,
      unfinished: c.total - finished - c.cancelled - c.waiting,
    },
    results,
    breached: results.filter((r) => r.status === "breached").map((r) => r.name),
  };
}
