import type pg from "pg";
import { ACTIVE_RUN, type RunStatus } from "./sql.js";

/**
 * What a run streams, carried across processes through Postgres: the worker appends each event to `run_events`
 * (fenced, so a worker that lost the task adds nothing), the insert notifies `keel_run_events`, and any server
 * process reads the rows from where its client stands. A client that reconnects with `Last-Event-ID` replays
 * what it missed; a run taken over by another worker continues in the same stream.
 */

export const RUN_EVENTS_CHANNEL = "keel_run_events";

/** One event as a stream carries it: `seq` is its SSE id. */
export interface RunEvent {
  seq: number;
  event: string;
  /** JSON text, as sent. */
  data: string;
}

/**
 * JSON the way the Agent Server API sends it: LangChain messages as their dict form (`{type, content, …}`), the
 * shape the SDK and Studio read, not LangChain's constructor form.
 */
export function serialise(value: unknown): string {
  return JSON.stringify(value, function (this: Record<string, unknown>, key, replaced: unknown) {
    const raw = this[key] as { toDict?: () => { type: string; data: object } } | null | undefined;
    if (raw && typeof raw === "object" && typeof raw.toDict === "function") {
      const { type, data } = raw.toDict();
      return { ...data, type };
    }
    return replaced;
  });
}

/**
 * Appends one worker's events to a run, in order. Events are written in the order given, batched while a write is
 * in flight (one multi-row insert), and only while the worker still holds the task with its fencing token.
 */
export class RunEventWriter {
  private queue: { event: string; data: string }[] = [];
  private writing: Promise<void> = Promise.resolve();
  private failure?: unknown;

  constructor(
    private readonly pool: pg.Pool,
    private readonly runId: string,
    private readonly fence: { taskId: string; token: string },
    private seq: number,
  ) {}

  /** Starts after the run's last event (a later attempt continues the stream). */
  static async open(pool: pg.Pool, runId: string, fence: { taskId: string; token: string }) {
    const { rows } = await pool.query<{ seq: number }>(
      "select coalesce(max(seq), 0)::int as seq from run_events where run_id = $1",
      [runId],
    );
    return new RunEventWriter(pool, runId, fence, rows[0]!.seq);
  }

  publish(event: string, data: unknown): void {
    this.queue.push({ event, data: serialise(data) ?? "null" });
    if (this.queue.length === 1) this.writing = this.writing.then(() => this.flushQueue());
  }

  /** Resolves when every event published so far is stored; throws if a write failed. */
  async flush(): Promise<void> {
    await this.writing;
    if (this.queue.length) await this.flushQueue();
    if (this.failure) throw this.failure as Error;
  }

  private async flushQueue(): Promise<void> {
    const batch = this.queue;
    this.queue = [];
    if (batch.length === 0 || this.failure) return;
    const first = this.seq + 1;
    this.seq += batch.length;
    try {
      await this.pool.query(
        `insert into run_events (run_id, seq, event, data)
         select $1, $2 + ord - 1, e.event, e.data
           from rows from (jsonb_to_recordset($3::jsonb) as (event text, data text)) with ordinality as e(event, data, ord)
          where exists (select 1 from tasks where id = $4 and fencing_token = $5 and status = 'running')`,
        [this.runId, first, JSON.stringify(batch), this.fence.taskId, this.fence.token],
      );
    } catch (error) {
      this.failure = error;
    }
  }
}

/**
 * One LISTEN connection per process for every stream it serves: a waiter is woken when its run has a new event or
 * a new status, and looks again every 10 s anyway (every second while the listener is down), so a missed
 * notification delays a stream, never ends it.
 */
export class RunStreams {
  private listener?: pg.PoolClient;
  private readonly waiters = new Map<string, Set<() => void>>();

  constructor(private readonly pool: pg.Pool) {}

  async start(): Promise<void> {
    this.listener = await this.pool.connect();
    this.listener.on("notification", (message) => {
      if (message.channel !== RUN_EVENTS_CHANNEL || !message.payload) return;
      for (const wake of this.waiters.get(message.payload) ?? []) wake();
    });
    // A dropped connection is replaced at the next start(); until then waiters poll.
    this.listener.on("error", () => (this.listener = undefined));
    await this.listener.query(`listen ${RUN_EVENTS_CHANNEL}`);
  }

  async stop(): Promise<void> {
    const listener = this.listener;
    this.listener = undefined;
    if (!listener) return;
    listener.removeAllListeners("notification");
    await listener.query(`unlisten ${RUN_EVENTS_CHANNEL}`).then(
      () => listener.release(),
      (error: Error) => listener.release(error),
    );
  }

  private wait(runId: string, ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const set = this.waiters.get(runId) ?? new Set();
      this.waiters.set(runId, set);
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", done);
        set.delete(done);
        if (set.size === 0) this.waiters.delete(runId);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal?.addEventListener("abort", done, { once: true });
      set.add(done);
    });
  }

  /**
   * The run's events after `after`, as they come, until the run has ended and every event is read (or the run
   * is deleted, or `signal` aborts). Status and events are read in one statement, so an ended run's last events
   * are never missed: the worker stores them before the status that ends it.
   */
  async *join(runId: string, after: number, signal?: AbortSignal): AsyncGenerator<RunEvent> {
    let last = after;
    while (!signal?.aborted) {
      const { rows } = await this.pool.query<{
        status: RunStatus;
        seq: number | null;
        event: string | null;
        data: string | null;
      }>(
        `select r.status, e.seq, e.event, e.data from runs r
           left join run_events e on e.run_id = r.run_id and e.seq > $2
          where r.run_id = $1 order by e.seq limit 500`,
        [runId, last],
      );
      if (rows.length === 0) return; // the run was deleted
      let got = 0;
      for (const row of rows) {
        if (row.seq === null) continue;
        got++;
        last = row.seq;
        yield { seq: row.seq, event: row.event!, data: row.data! };
      }
      if (got > 0) continue;
      if (!ACTIVE_RUN.includes(rows[0]!.status)) return;
      // Woken by the run's notifications; the timeout only covers one that was missed (or no listener at all).
      await this.wait(runId, this.listener ? 10_000 : 1000, signal);
    }
  }
}

/**
 * Keeps the events table bounded: the streams of runs that ended more than `hours` ago are deleted, a bounded
 * batch at a time (the workers' hourly housekeeping). The runs themselves, and their threads' state, stay; joining
 * such a run's stream then ends at once, and waiting for it answers its thread's values.
 */
export async function pruneRunEvents(pool: pg.Pool, hours: number, batch = 500): Promise<number> {
  const { rowCount } = await pool.query(
    `delete from run_events where run_id in (
       select run_id from runs where status not in ('pending', 'running')
          and updated_at < now() - make_interval(hours => $1)
          and exists (select 1 from run_events e where e.run_id = runs.run_id)
        limit $2)`,
    [hours, batch],
  );
  return rowCount ?? 0;
}
