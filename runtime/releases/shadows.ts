import { randomBytes, randomUUID } from "node:crypto";
import type pg from "pg";
import { InputError, NotFoundError } from "../../core/errors.js";
import { bucketOf } from "./assign.js";
import { releaseLabel, type ReleaseRow } from "./store.js";

/** The queue shadow tasks go to: run them with `keel worker --queue shadow`, apart from the primaries' workers. */
export const SHADOW_QUEUE = "shadow";
/** The workflow of shadow tasks: apart from every other workflow's SLOs. */
export const SHADOW_WORKFLOW = "shadow";

export interface ShadowRow {
  id: string;
  candidate_id: string;
  sample_percent: string;
  status: "active" | "stopped";
  salt: string;
  created_by: string;
  created_at: Date;
  stopped_at: Date | null;
}

type Queryable = Pick<pg.Pool, "query">;

export async function activeShadow(db: Queryable): Promise<ShadowRow | undefined> {
  const { rows } = await db.query<ShadowRow>("select * from shadows where status = 'active'");
  return rows[0];
}

/** Starts shadowing `percent` of new requests with `candidate`, its effects simulated. One shadow at a time. */
export async function startShadow(
  pool: pg.Pool,
  input: { candidate: ReleaseRow; percent: number; actor: string },
): Promise<ShadowRow> {
  if (!(input.percent > 0 && input.percent <= 100))
    throw new InputError(
      `--sample must be a percent above 0 and up to 100 (it is ${input.percent}).`,
      "invalid_argument",
    );
  try {
    const { rows } = await pool.query<ShadowRow>(
      `insert into shadows (id, candidate_id, sample_percent, status, salt, created_by)
       values ($1, $2, $3, 'active', $4, $5) returning *`,
      [randomUUID(), input.candidate.id, input.percent, randomBytes(8).toString("hex"), input.actor],
    );
    return rows[0]!;
  } catch (error) {
    if ((error as { code?: string }).code === "23505")
      throw new InputError(
        `A shadow is already running; stop it first (keel shadow stop) to shadow ${releaseLabel(input.candidate)}.`,
        "conflict",
      );
    throw error;
  }
}

export async function stopShadow(pool: pg.Pool): Promise<ShadowRow> {
  const { rows } = await pool.query<ShadowRow>(
    "update shadows set status = 'stopped', stopped_at = now() where status = 'active' returning *",
  );
  if (!rows[0]) throw new NotFoundError("No shadow is running. keel shadow start CANDIDATE starts one.");
  return rows[0];
}

/**
 * The release a new request's shadow runs on, when it is sampled: requests of the shadow's sample (by a hash of
 * the task id), never eval runs or shadows themselves. One statement, in the submit's transaction.
 */
export async function shadowFor(
  db: Queryable,
  primary: { id: string; workflow: string },
): Promise<string | undefined> {
  if (primary.workflow === "eval" || primary.workflow === SHADOW_WORKFLOW) return undefined;
  const shadow = await activeShadow(db);
  if (!shadow) return undefined;
  return bucketOf(shadow.salt, primary.id) < Number(shadow.sample_percent) * 100
    ? shadow.candidate_id
    : undefined;
}
