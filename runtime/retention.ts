import type pg from "pg";
import {
  addPruned,
  deleteThreadCheckpoints,
  keepLatestCheckpoint,
  NOTHING_PRUNED,
  type PrunedCheckpoints,
} from "../checkpoints/retention.js";
import type { RetentionPolicy } from "../policy/retention.js";
import { inTransaction } from "./task/store.js";

/** A finished thread that retention applies to now. */
export interface RetentionCandidate {
  thread_id: string;
  /** request: a Keel request's thread (its root task's id); thread: a thread of the Agent Server API. */
  kind: "request" | "thread";
  workflow: string;
  /** How it finished: a request's status (done, failed, cancelled), an API thread's (idle, error). */
  status: string;
  /** When it finished, as Postgres wrote it (to the microsecond, so it can be compared again exactly). */
  ended_at: string;
  then: "latest" | "delete";
}

/** What one pass of retention did (or, in a dry run, would do). */
export interface RetentionReport {
  dry_run: boolean;
  threads: { latest: number; delete: number };
  removed: PrunedCheckpoints;
  /** Threads that started again between being chosen and being pruned, and were left alone. */
  skipped: number;
  /** Each thread pruned, oldest first. */
  pruned: (RetentionCandidate & { removed: PrunedCheckpoints })[];
}

/**
 * The finished threads whose retention is due, oldest end first: a request done, failed or cancelled, or an API
 * thread idle or in error (not busy, not waiting for a person), past its workflow's `keep_all_days`, whose
 * workflow does not keep everything, that still has checkpoints, and that retention has not seen since it ended.
 */
export async function dueForRetention(
  db: pg.Pool | pg.ClientBase,
  policy: RetentionPolicy,
  limit: number,
): Promise<RetentionCandidate[]> {
  const { rows } = await db.query<RetentionCandidate>(
    `with finished as (
         select t.id::text as thread_id, 'request' as kind, t.workflow, t.status, t.finished_at as ended_at
           from tasks t
          where t.parent_id is null and t.status in ('done', 'failed', 'cancelled') and t.finished_at is not null
       union all
         select th.thread_id::text, 'thread', coalesce(th.metadata ->> 'graph_id', 'default'), th.status, th.updated_at
           from threads th where th.status in ('idle', 'error')),
     ruled as (
       select f.*, coalesce($1::jsonb -> f.workflow ->> 'then', $3) as "then",
              coalesce(($1::jsonb -> f.workflow ->> 'keep_all_days')::int, $2) as days
         from finished f)
     select thread_id, kind, workflow, status, ended_at::text as ended_at, "then" from ruled r
      where r."then" <> 'keep' and r.ended_at < now() - make_interval(days => r.days)
        and exists (select 1 from checkpoints c where c.thread_id = r.thread_id)
        and not exists (select 1 from checkpoint_retention p where p.thread_id = r.thread_id and p.ended_at >= r.ended_at)
      order by r.ended_at
      limit $4`,
    [JSON.stringify(policy.workflows), policy.checkpoints.keep_all_days, policy.checkpoints.then, limit],
  );
  return rows;
}

/** Thrown to roll back a dry run's changes once it has measured them. */
class DryRun extends Error {
  constructor(readonly removed: PrunedCheckpoints) {
    super("dry run");
  }
}

/**
 * Applies the retention policy to up to `limit` finished threads, one transaction each. Each thread is locked
 * (its request's root task, or its API thread) and checked again first: one that was retried, resumed or given a
 * new run since it was chosen is left alone. `latest` keeps the latest checkpoint and what it needs; `delete`
 * removes the checkpoints (and an API thread itself, whose state they are). A dry run measures the same and
 * rolls it back.
 */
export async function applyRetention(
  pool: pg.Pool,
  policy: RetentionPolicy,
  options: { limit?: number; dryRun?: boolean } = {},
): Promise<RetentionReport> {
  const dryRun = options.dryRun ?? false;
  const report: RetentionReport = {
    dry_run: dryRun,
    threads: { latest: 0, delete: 0 },
    removed: NOTHING_PRUNED,
    skipped: 0,
    pruned: [],
  };
  for (const candidate of await dueForRetention(pool, policy, options.limit ?? 200)) {
    let removed: PrunedCheckpoints | undefined;
    try {
      removed = await inTransaction(pool, async (client) => {
        if (!(await stillFinished(client, candidate))) return undefined;
        const done =
          candidate.then === "latest"
            ? await keepLatestCheckpoint(client, candidate.thread_id, {
                // Finished cleanly, nothing resumes its subgraphs; a failed or cancelled request may be retried.
                subgraphs: candidate.status === "done" || candidate.status === "idle" ? "drop" : "latest",
              })
            : await deleteThreadCheckpoints(client, candidate.thread_id);
        if (candidate.then === "delete" && candidate.kind === "thread")
          await client.query("delete from threads where thread_id = $1", [candidate.thread_id]);
        await client.query(
          `insert into checkpoint_retention (thread_id, applied, ended_at, checkpoints, writes, blobs, bytes)
           values ($1, $2, $3, $4, $5, $6, $7)
           on conflict (thread_id) do update set applied = excluded.applied, ended_at = excluded.ended_at,
             applied_at = now(), checkpoints = excluded.checkpoints, writes = excluded.writes,
             blobs = excluded.blobs, bytes = excluded.bytes`,
          [
            candidate.thread_id,
            candidate.then,
            candidate.ended_at,
            done.checkpoints,
            done.writes,
            done.blobs,
            done.bytes,
          ],
        );
        if (dryRun) throw new DryRun(done);
        return done;
      });
    } catch (error) {
      if (!(error instanceof DryRun)) throw error;
      removed = error.removed;
    }
    if (!removed) {
      report.skipped++;
      continue;
    }
    report.threads[candidate.then]++;
    report.removed = addPruned(report.removed, removed);
    report.pruned.push({ ...candidate, removed });
  }
  return report;
}

/** Under the lock of what owns the thread: is it still finished, as it was when chosen? */
async function stillFinished(client: pg.PoolClient, candidate: RetentionCandidate): Promise<boolean> {
  if (candidate.kind === "request") {
    const { rows } = await client.query<{ finished: boolean }>(
      `select status in ('done', 'failed', 'cancelled') and finished_at = $2::timestamptz as finished
         from tasks where id = $1::uuid for update`,
      [candidate.thread_id, candidate.ended_at],
    );
    return rows[0]?.finished ?? false;
  }
  const { rows } = await client.query<{ finished: boolean }>(
    `select status in ('idle', 'error') and updated_at = $2::timestamptz as finished from threads where thread_id = $1::uuid for update`,
    [candidate.thread_id, candidate.ended_at],
  );
  return rows[0]?.finished ?? false;
}

/** Whether retention deleted a request's checkpoints: it has nothing to continue from. */
export async function checkpointsDeleted(db: pg.Pool | pg.ClientBase, threadId: string): Promise<boolean> {
  const { rows } = await db.query(
    "select 1 from checkpoint_retention where thread_id = $1 and applied = 'delete'",
    [threadId],
  );
  return rows.length > 0;
}
