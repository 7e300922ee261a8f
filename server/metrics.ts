import type pg from "pg";
import { collectDefaultMetrics, Counter, Gauge, Registry } from "prom-client";

/**
 * `/metrics` in Prometheus' text format. The task figures are the whole deployment's, read from Postgres when
 * scraped (so any API node reports the same; scrape one); the breaker states and the process's own figures are
 * this process's. Counters count what the tasks table keeps, so they only grow: purge erases content, not rows.
 */
export function createMetrics(
  pool: pg.Pool,
  breakers: () => { name: string; state: string; release?: string }[] = () => [],
): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "keel_" });
  /** A metric whose value per label is a count a query returns as (label, n) rows. */
  const countsBy = (label: string, query: string) =>
    async function (this: Gauge | Counter) {
      const { rows } = await pool.query<Record<string, string>>(query);
      this.reset();
      for (const r of rows) {
        const labels = { [label]: r[label]! };
        if (this instanceof Counter) this.inc(labels, Number(r.n));
        else this.set(labels, Number(r.n));
      }
    };

  new Gauge({
    name: "keel_tasks",
    help: "Requests (root tasks) by status, now",
    labelNames: ["status"],
    registers: [registry],
    collect: countsBy(
      "status",
      "select status, count(*) as n from tasks where parent_id is null group by status",
    ),
  });
  new Counter({
    name: "keel_tasks_finished_total",
    help: "Requests that ended, by how (done, failed, cancelled)",
    labelNames: ["status"],
    registers: [registry],
    collect: countsBy(
      "status",
      `select status, count(*) as n from tasks
        where parent_id is null and status in ('done', 'failed', 'cancelled') group by status`,
    ),
  });
  new Gauge({
    name: "keel_task_duration_seconds",
    help: "Time from submission to the end, of requests that ended in the last hour, by quantile",
    labelNames: ["quantile"],
    registers: [registry],
    async collect() {
      const { rows } = await pool.query<{ p50: number | null; p95: number | null; p99: number | null }>(
        `select percentile_cont(0.5) within group (order by s) as p50,
                percentile_cont(0.95) within group (order by s) as p95,
                percentile_cont(0.99) within group (order by s) as p99
           from (select extract(epoch from finished_at - created_at)::float8 as s from tasks
                  where parent_id is null and finished_at > now() - interval '1 hour') d`,
      );
      this.reset();
      const r = rows[0];
      if (r?.p50 == null) return;
      this.set({ quantile: "0.5" }, r.p50);
      this.set({ quantile: "0.95" }, r.p95 ?? r.p50);
      this.set({ quantile: "0.99" }, r.p99 ?? r.p50);
    },
  });
  new Gauge({
    name: "keel_queue_depth",
    help: "Tasks waiting for a worker, by queue",
    labelNames: ["queue"],
    registers: [registry],
    collect: countsBy(
      "queue",
      "select queue, count(*) as n from tasks where status = 'queued' group by queue",
    ),
  });
  new Gauge({
    name: "keel_tool_calls_last_hour",
    help: "Tool calls in the last hour, by tool and outcome (ok, error, invalid_arguments, rejected, refused)",
    labelNames: ["tool", "status"],
    registers: [registry],
    async collect() {
      const { rows } = await pool.query<{ tool: string; status: string; n: string }>(
        `select name as tool, status, count(*) as n from trajectory_steps
          where kind = 'tool_call' and started_at > now() - interval '1 hour' group by name, status`,
      );
      this.reset();
      for (const r of rows) this.set({ tool: r.tool, status: r.status }, Number(r.n));
    },
  });
  new Gauge({
    name: "keel_approvals_pending",
    help: "Approvals waiting for a person, by mode (async, sync)",
    labelNames: ["mode"],
    registers: [registry],
    collect: countsBy(
      "mode",
      "select mode, count(*) as n from approvals where status = 'pending' group by mode",
    ),
  });
  new Gauge({
    name: "keel_breaker_open",
    help: "Whether this process's circuit breaker for a dependency (of the runs of a release) is open (1), half-open (0.5) or closed (0)",
    labelNames: ["dependency", "state", "release"],
    registers: [registry],
    collect() {
      this.reset();
      for (const b of breakers())
        this.set(
          { dependency: b.name, state: b.state, release: b.release ?? "" },
          b.state === "open" || b.state === "isolated" ? 1 : b.state === "half-open" ? 0.5 : 0,
        );
    },
  });
  return registry;
}
