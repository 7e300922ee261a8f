import { randomBytes, randomUUID } from "node:crypto";
import type pg from "pg";
import { InputError, NotFoundError } from "../../core/errors.js";
import { inTransaction } from "../../core/transaction.js";
import { checkSteps, getsCandidate, type AssignmentKey, type RolloutStep } from "./assign.js";
import { getRelease, releaseLabel, type ReleaseRow } from "./store.js";

export type RolloutStatus = "running" | "paused" | "promoted" | "aborted";

export interface RolloutRow {
  id: string;
  baseline_id: string;
  candidate_id: string;
  assignment_key: AssignmentKey;
  steps: RolloutStep[];
  step: number;
  status: RolloutStatus;
  analysis: Record<string, unknown>;
  salt: string;
  reason: string | null;
  created_by: string;
  created_at: Date;
  step_started_at: Date;
  ended_at: Date | null;
}

export interface RolloutEvent {
  id: string;
  at: Date;
  kind: string;
  step: number;
  actor: string;
  reason: string;
  details: Record<string, unknown>;
}

type Queryable = Pick<pg.Pool, "query">;

/** The release tasks submitted to none run on while no rollout is in progress (none: the worker's own). */
export async function stableRelease(db: Queryable): Promise<ReleaseRow | undefined> {
  const { rows } = await db.query<{ release_id: string }>(
    "select release_id from release_channels where name = 'stable'",
  );
  return rows[0] ? getRelease(db, rows[0].release_id) : undefined;
}

/** Makes a release the stable one (`keel release promote`, and a rollout that ends promoted). */
export async function setStable(db: Queryable, releaseId: string): Promise<void> {
  await db.query(
    `insert into release_channels (name, release_id) values ('stable', $1)
     on conflict (name) do update set release_id = excluded.release_id, updated_at = now()`,
    [releaseId],
  );
}

/** The rollout in progress (running or paused), if any. */
export async function activeRollout(db: Queryable): Promise<RolloutRow | undefined> {
  const { rows } = await db.query<RolloutRow>("select * from rollouts where status in ('running', 'paused')");
  return rows[0];
}

/** The rollout in progress, else the latest one. */
export async function latestRollout(db: Queryable): Promise<RolloutRow | undefined> {
  const { rows } = await db.query<RolloutRow>(
    "select * from rollouts order by (status in ('running', 'paused')) desc, created_at desc limit 1",
  );
  return rows[0];
}

export async function rolloutEvents(db: Queryable, rolloutId: string): Promise<RolloutEvent[]> {
  const { rows } = await db.query<RolloutEvent>(
    "select id, at, kind, step, actor, reason, details from rollout_events where rollout_id = $1 order by id",
    [rolloutId],
  );
  return rows;
}

async function recordEvent(
  client: pg.PoolClient,
  rollout: Pick<RolloutRow, "id" | "step">,
  event: { kind: string; actor: string; reason: string; details?: Record<string, unknown> },
): Promise<void> {
  await client.query(
    "insert into rollout_events (rollout_id, kind, step, actor, reason, details) values ($1, $2, $3, $4, $5, $6)",
    [rollout.id, event.kind, rollout.step, event.actor, event.reason, JSON.stringify(event.details ?? {})],
  );
}

/**
 * Starts moving `candidate` through `steps` against `baseline` (default: the stable release). One rollout at a
 * time; the candidate must differ from the baseline.
 */
export async function startRollout(
  pool: pg.Pool,
  input: {
    candidate: ReleaseRow;
    baseline?: ReleaseRow;
    key: AssignmentKey;
    steps: RolloutStep[];
    actor: string;
    reason?: string;
    analysis?: Record<string, unknown>;
    /** The gate's outcome (golden evals on both releases), recorded before the start. */
    gate?: { reason: string; details: Record<string, unknown> };
  },
): Promise<RolloutRow> {
  checkSteps(input.steps);
  const baseline = await baselineFor(pool, input.candidate, input.baseline);
  try {
    return await inTransaction(pool, async (client) => {
      const { rows } = await client.query<RolloutRow>(
        `insert into rollouts (id, baseline_id, candidate_id, assignment_key, steps, status, analysis, salt, reason, created_by)
         values ($1, $2, $3, $4, $5, 'running', $6, $7, $8, $9) returning *`,
        [
          randomUUID(),
          baseline.id,
          input.candidate.id,
          input.key,
          JSON.stringify(input.steps),
          JSON.stringify(input.analysis ?? {}),
          randomBytes(8).toString("hex"),
          input.reason ?? null,
          input.actor,
        ],
      );
      // The baseline is what tasks run on outside the candidate's share, and after an abort.
      await setStable(client, baseline.id);
      if (input.gate)
        await recordEvent(client, rows[0]!, { kind: "gate", actor: input.actor, ...input.gate });
      await recordEvent(client, rows[0]!, {
        kind: "started",
        actor: input.actor,
        reason:
          input.reason ??
          `${releaseLabel(input.candidate)} against ${releaseLabel(baseline)}, by ${input.key}: ${describeSteps(input.steps)}`,
      });
      return rows[0]!;
    });
  } catch (error) {
    if ((error as { code?: string }).code === "23505") {
      const active = await activeRollout(pool);
      throw new InputError(
        `A rollout is already in progress${active ? ` (${active.id}, ${active.status})` : ""}: finish it (keel rollout promote) or abort it first.`,
        "conflict",
      );
    }
    throw error;
  }
}

/**
 * The baseline a rollout of `candidate` would run against: the one given, else the stable release. Refused when
 * there is none, when it is the candidate, or when a rollout is already in progress (checked again on insert).
 */
export async function baselineFor(
  db: Queryable,
  candidate: ReleaseRow,
  given?: ReleaseRow,
): Promise<ReleaseRow> {
  const baseline = given ?? (await stableRelease(db));
  if (!baseline)
    throw new InputError(
      "There is no stable release to compare the candidate with: give --baseline NAME (keel release create makes one from the current configuration).",
    );
  if (baseline.id === candidate.id)
    throw new InputError(
      `The candidate ${releaseLabel(candidate)} is the baseline; a rollout moves traffic to another release.`,
    );
  const active = await activeRollout(db);
  if (active)
    throw new InputError(
      `A rollout is already in progress (${active.id}, ${active.status}): finish it (keel rollout promote) or abort it first.`,
      "conflict",
    );
  return baseline;
}

/**
 * Records a rollout the gate stopped before any traffic: ended aborted at its first step, with the gate's event,
 * so `keel rollout status` shows what was tried and why it never started.
 */
export async function recordGateStop(
  pool: pg.Pool,
  input: {
    candidate: ReleaseRow;
    baseline: ReleaseRow;
    key: AssignmentKey;
    steps: RolloutStep[];
    actor: string;
    reason: string;
    details: Record<string, unknown>;
  },
): Promise<RolloutRow> {
  return inTransaction(pool, async (client) => {
    const { rows } = await client.query<RolloutRow>(
      `insert into rollouts (id, baseline_id, candidate_id, assignment_key, steps, status, salt, reason, created_by, ended_at)
       values ($1, $2, $3, $4, $5, 'aborted', $6, $7, $8, now()) returning *`,
      [
        randomUUID(),
        input.baseline.id,
        input.candidate.id,
        input.key,
        JSON.stringify(input.steps),
        randomBytes(8).toString("hex"),
        input.reason,
        input.actor,
      ],
    );
    await recordEvent(client, rows[0]!, {
      kind: "gate",
      actor: input.actor,
      reason: input.reason,
      details: input.details,
    });
    return rows[0]!;
  });
}

/** `cohort alice,bob -> 1% -> 10% -> 100%`. */
export function describeSteps(steps: readonly RolloutStep[]): string {
  return steps.map((s) => ("cohort" in s ? `cohort ${s.cohort.join(",")}` : `${s.percent}%`)).join(" -> ");
}

/** Locks the rollout in progress for a change; none is a NotFoundError that says how to start one. */
async function lockActive(client: pg.PoolClient): Promise<RolloutRow> {
  const { rows } = await client.query<RolloutRow>(
    "select * from rollouts where status in ('running', 'paused') for update",
  );
  if (!rows[0])
    throw new NotFoundError("No rollout is in progress. keel rollout start CANDIDATE starts one.");
  return rows[0];
}

/** Stops advancing (assignment stays as it is at this step) until resumed. */
export function pauseRollout(pool: pg.Pool, actor: string, reason = "paused by hand"): Promise<RolloutRow> {
  return inTransaction(pool, async (client) => {
    const rollout = await lockActive(client);
    if (rollout.status === "paused") return rollout;
    const { rows } = await client.query<RolloutRow>(
      "update rollouts set status = 'paused' where id = $1 returning *",
      [rollout.id],
    );
    await recordEvent(client, rollout, { kind: "paused", actor, reason });
    return rows[0]!;
  });
}

export function resumeRollout(pool: pg.Pool, actor: string, reason = "resumed by hand"): Promise<RolloutRow> {
  return inTransaction(pool, async (client) => {
    const rollout = await lockActive(client);
    if (rollout.status === "running") return rollout;
    // The analysis window starts again: what ran while paused is not judged as this step's.
    const { rows } = await client.query<RolloutRow>(
      "update rollouts set status = 'running', step_started_at = now() where id = $1 returning *",
      [rollout.id],
    );
    await recordEvent(client, rollout, { kind: "resumed", actor, reason });
    return rows[0]!;
  });
}

/**
 * Moves to the next step; from the last (or with `full`), ends the rollout promoted: the candidate becomes the
 * stable release and every new task runs on it.
 */
export function promoteRollout(
  pool: pg.Pool,
  actor: string,
  options: { full?: boolean; reason?: string } = {},
): Promise<RolloutRow> {
  return inTransaction(pool, async (client) => {
    const rollout = await lockActive(client);
    const next = options.full ? rollout.steps.length : rollout.step + 1;
    if (next >= rollout.steps.length) {
      const { rows } = await client.query<RolloutRow>(
        "update rollouts set status = 'promoted', step = $2, ended_at = now() where id = $1 returning *",
        [rollout.id, rollout.steps.length - 1],
      );
      await setStable(client, rollout.candidate_id);
      await recordEvent(client, rows[0]!, {
        kind: "promoted",
        actor,
        reason: options.reason ?? "promoted to every task: the candidate is now the stable release",
      });
      return rows[0]!;
    }
    const { rows } = await client.query<RolloutRow>(
      "update rollouts set step = $2, step_started_at = now() where id = $1 returning *",
      [rollout.id, next],
    );
    await recordEvent(client, rows[0]!, {
      kind: "step",
      actor,
      reason:
        options.reason ??
        `moved to step ${next + 1} of ${rollout.steps.length}: ${describeSteps([rollout.steps[next]!])}`,
    });
    return rows[0]!;
  });
}

/**
 * Ends the rollout aborted: new tasks go to the baseline at once, and the tasks this rollout assigned to the
 * candidate that have not started yet move to the baseline too. Tasks already running (or waiting for a person)
 * on the candidate finish on it: their checkpoints are its. Tasks given the candidate by name (`--release`, an
 * assistant, a shadow) keep it: someone asked for it.
 */
export function abortRollout(
  pool: pg.Pool,
  actor: string,
  reason: string,
  details: Record<string, unknown> = {},
): Promise<{ rollout: RolloutRow; moved: number }> {
  return inTransaction(pool, async (client) => {
    const rollout = await lockActive(client);
    const { rows } = await client.query<RolloutRow>(
      "update rollouts set status = 'aborted', reason = $2, ended_at = now() where id = $1 returning *",
      [rollout.id, reason],
    );
    await setStable(client, rollout.baseline_id);
    const moved = await client.query(
      `update tasks set release_id = $2, release_pinned = true
        where rollout_id = $3 and release_id = $1 and parent_id is null and status = 'queued'
          and started_at is null`,
      [rollout.candidate_id, rollout.baseline_id, rollout.id],
    );
    await recordEvent(client, rows[0]!, {
      kind: "aborted",
      actor,
      reason,
      details: { ...details, moved_to_baseline: moved.rowCount ?? 0 },
    });
    return { rollout: rows[0]!, moved: moved.rowCount ?? 0 };
  });
}

/** The release a task is given when it names none, and the rollout that chose it (if one did). */
export interface Assignment {
  releaseId?: string;
  rolloutId?: string;
}

/**
 * The release a new task submitted to none runs on: the rollout's candidate or baseline by the task's key, else
 * the stable release, else none (the worker's own configuration). One statement, in the submit's transaction.
 */
export async function assignRelease(
  db: Queryable,
  task: { id: string; submittedBy: string; workflow: string },
): Promise<Assignment> {
  const { rows } = await db.query<{ stable: string | null; rollout: RolloutRow | null }>(
    `select (select release_id from release_channels where name = 'stable') as stable,
            (select to_jsonb(r) from rollouts r where r.status in ('running', 'paused')) as rollout`,
  );
  const { stable, rollout } = rows[0]!;
  // Eval runs are not traffic: they run on the release they name, else the stable one.
  if (!rollout || task.workflow === "eval") return stable ? { releaseId: stable } : {};
  const key =
    rollout.assignment_key === "submitter"
      ? task.submittedBy
      : rollout.assignment_key === "workflow"
        ? task.workflow
        : task.id;
  const releaseId = getsCandidate(rollout.steps, rollout.step, rollout.salt, key)
    ? rollout.candidate_id
    : rollout.baseline_id;
  return { releaseId, rolloutId: rollout.id };
}
