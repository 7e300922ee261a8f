import { parseCronItem, type ParsedCronItem } from "graphile-worker";
import type pg from "pg";
import type { KeelConfig } from "../../core/config.js";
import { InputError } from "../../core/errors.js";
import { createRun } from "./store.js";
import { MultitaskStrategy, RunKwargs } from "./sql.js";
import { z } from "zod";

/**
 * Crons of the Agent Server API. graphile-worker's own scheduler fires one tick a minute across all workers
 * (`keel_cron_tick`, deduplicated by graphile-worker, so two workers do not both fire it); the tick starts a run
 * for every enabled cron whose schedule matches that minute in its time zone. Schedules are parsed and matched by
 * graphile-worker's crontab parser, so they mean what they mean in a graphile-worker crontab.
 */

/** What each firing runs: a run request, stored as the run API normalised it. */
export const CronPayload = z.object({
  kwargs: RunKwargs,
  metadata: z.record(z.string(), z.unknown()),
  multitask: MultitaskStrategy,
  request: z.string(),
});
export type CronPayload = z.infer<typeof CronPayload>;

export interface CronRow {
  cron_id: string;
  assistant_id: string;
  thread_id: string | null;
  owner: string;
  schedule: string;
  timezone: string;
  end_time: Date | null;
  payload: CronPayload;
  metadata: Record<string, unknown>;
  enabled: boolean;
  on_run_completed: "delete" | "keep";
  last_fired_at: Date | null;
  last_error: string | null;
  created_at: Date;
  updated_at: Date;
}

/** A schedule, parsed; a bad one is an InputError that says what a schedule looks like. */
export function parseSchedule(schedule: string): ParsedCronItem {
  try {
    return parseCronItem({ task: "keel_cron", match: schedule });
  } catch (error) {
    throw new InputError(
      `"${schedule}" is not a cron schedule (${(error as Error).message}); give five fields: minute hour day-of-month month day-of-week, e.g. "*/5 * * * *".`,
    );
  }
}

/** A time zone Intl knows; anything else is an InputError. */
export function checkTimezone(timezone: string): string {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: timezone });
    return timezone;
  } catch {
    throw new InputError(`"${timezone}" is not a time zone; give an IANA name such as UTC or Europe/Paris.`);
  }
}

const DOW: Record<string, number> = { Sun: 0, Mon: 1, Tue: 2, Wed: 3, Thu: 4, Fri: 5, Sat: 6 };

/** The minute `at` as the schedule's time zone reads it. */
function digestAt(at: Date, timezone: string) {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat("en-US", {
      timeZone: timezone,
      hourCycle: "h23",
      minute: "numeric",
      hour: "numeric",
      day: "numeric",
      month: "numeric",
      weekday: "short",
    })
      .formatToParts(at)
      .map((p) => [p.type, p.value]),
  );
  return {
    min: Number(parts.minute),
    hour: Number(parts.hour),
    date: Number(parts.day),
    month: Number(parts.month),
    dow: DOW[parts.weekday!]!,
  };
}

/** The first minute after `from` the schedule fires, within a year (null: never within that time). */
export function nextRunDate(schedule: string, timezone: string, from = new Date(), endTime?: Date | null) {
  const item = parseSchedule(schedule);
  const start = Math.floor(from.getTime() / 60_000) * 60_000 + 60_000;
  for (let t = start; t < start + 366 * 86_400_000; t += 60_000) {
    if (endTime && t > endTime.getTime()) return null;
    if (item.match(digestAt(new Date(t), timezone))) return new Date(t);
  }
  return null;
}

/**
 * Starts the run of every enabled cron due at the minute `at`: once per cron and minute, however many ticks run.
 * A cron whose run cannot start (its thread busy with `reject`, say) records why and fires again next time.
 */
export async function fireDueCrons(
  pool: pg.Pool,
  config: KeelConfig,
  at: Date,
  /** Whether a graph is Keel's orchestrator, whose runs run on a release. */
  releasable: (graphId: string) => Promise<boolean> = () => Promise.resolve(false),
): Promise<{ fired: string[]; failed: string[] }> {
  const minute = new Date(Math.floor(at.getTime() / 60_000) * 60_000);
  const { rows } = await pool.query<CronRow>(
    `select * from crons where enabled and (end_time is null or end_time >= $1)
        and (last_fired_at is null or last_fired_at < $1)`,
    [minute],
  );
  const fired: string[] = [];
  const failed: string[] = [];
  for (const cron of rows) {
    if (!parseSchedule(cron.schedule).match(digestAt(minute, cron.timezone))) continue;
    // Claim this minute for this cron first: a second tick (or worker) finds it claimed and starts nothing.
    const claimed = await pool.query(
      "update crons set last_fired_at = $2 where cron_id = $1 and (last_fired_at is null or last_fired_at < $2)",
      [cron.cron_id, minute],
    );
    if (!claimed.rowCount) continue;
    try {
      const assistant = await pool.query<{ assistant_id: string; graph_id: string; metadata: object }>(
        "select assistant_id, graph_id, metadata from assistants where assistant_id = $1",
        [cron.assistant_id],
      );
      if (!assistant.rows[0])
        throw new InputError(`its assistant ${cron.assistant_id} no longer exists; delete the cron.`);
      const payload = CronPayload.parse(cron.payload);
      await createRun(pool, config, {
        threadId: cron.thread_id ?? undefined,
        assistant: { ...assistant.rows[0], metadata: assistant.rows[0].metadata as Record<string, unknown> },
        kwargs: { ...payload.kwargs, temporary: !cron.thread_id && cron.on_run_completed === "delete" },
        metadata: { ...payload.metadata, cron_id: cron.cron_id },
        multitask: payload.multitask,
        ifNotExists: "reject",
        caller: { identity: cron.owner, ownerFilter: null },
        request: payload.request,
        releasable: await releasable(assistant.rows[0].graph_id),
      });
      await pool.query("update crons set last_error = null where cron_id = $1", [cron.cron_id]);
      fired.push(cron.cron_id);
    } catch (error) {
      await pool.query("update crons set last_error = $2 where cron_id = $1", [
        cron.cron_id,
        `${minute.toISOString()}: ${(error as Error).message}`,
      ]);
      failed.push(cron.cron_id);
    }
  }
  return { fired, failed };
}
