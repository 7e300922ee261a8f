import type { RunnableConfig } from "@langchain/core/runnables";
import {
  BaseCheckpointSaver,
  TASKS,
  WRITES_IDX_MAP,
  maxChannelVersion,
  type ChannelVersions,
  type Checkpoint,
  type CheckpointListOptions,
  type CheckpointMetadata,
  type CheckpointPendingWrite,
  type CheckpointTuple,
  type DeltaChannelHistory,
  type PendingWrite,
  type SerializerProtocol,
} from "@langchain/langgraph-checkpoint";
import { createHash } from "node:crypto";
import type pg from "pg";

/** The task a checkpoint write is made under, and the fencing token its holder was given. */
export interface Fence {
  taskId: string;
  token: string;
}

/** The SQLSTATE `keel_hold_fence` raises when the task is no longer held with the token (migration 8). */
export const FENCED_SQLSTATE = "KF001";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const TOKEN = /^\d{1,19}$/;

/** One row of `checkpoint_writes`, ready to send: the columns in table order. */
type WriteRow = [
  threadId: string,
  ns: string,
  checkpointId: string,
  taskId: string,
  taskPath: string,
  idx: number,
  channel: string,
  type: string,
  blob: Buffer,
];

/** Writes waiting to be sent: flushed on the next turn of the event loop, or with the thread's next `put`. */
interface QueuedWrites {
  threadId: string;
  fence: Fence | undefined;
  rows: WriteRow[];
  resolve: () => void;
  reject: (error: unknown) => void;
}

/** A checkpoint ready to send. */
interface CheckpointRow {
  threadId: string;
  ns: string;
  checkpointId: string;
  parentId: string | undefined;
  checkpoint: string;
  metadata: string;
  blobs: { channel: string[]; version: string[]; type: string[]; blob: (Buffer | null)[] };
}

/** What a read selects for one checkpoint: the row, its channel values and its pending writes, as arrays. */
interface ReadRow {
  thread_id: string;
  checkpoint_ns: string;
  checkpoint_id: string;
  parent_checkpoint_id: string | null;
  checkpoint: Checkpoint & { v: number };
  metadata: Record<string, unknown>;
  b_channel: string[] | null;
  b_type: string[] | null;
  b_blob: (Buffer | null)[] | null;
  w_task: string[] | null;
  w_channel: string[] | null;
  w_type: string[] | null;
  w_blob: Buffer[] | null;
}

// A checkpoint with its channel values (the blobs at the versions it names) and its pending writes, in the order
// LangGraph applies a superstep's writes: task path, task id, index, compared by code point (collation "C").
const SELECT = `
  select cp.thread_id, cp.checkpoint_ns, cp.checkpoint_id, cp.parent_checkpoint_id, cp.checkpoint, cp.metadata,
         b.b_channel, b.b_type, b.b_blob, w.w_task, w.w_channel, w.w_type, w.w_blob
    from checkpoints cp
    left join lateral (
      select array_agg(bl.channel) as b_channel, array_agg(bl.type) as b_type, array_agg(bl.blob) as b_blob
        from jsonb_each_text(cp.checkpoint -> 'channel_versions') as v(channel, version)
        join checkpoint_blobs bl
          on bl.thread_id = cp.thread_id and bl.checkpoint_ns = cp.checkpoint_ns
         and bl.channel = v.channel and bl.version = v.version
       where bl.type <> 'empty') b on true
    left join lateral (
      select array_agg(cw.task_id order by cw.task_path collate "C", cw.task_id collate "C", cw.idx) as w_task,
             array_agg(cw.channel order by cw.task_path collate "C", cw.task_id collate "C", cw.idx) as w_channel,
             array_agg(cw.type order by cw.task_path collate "C", cw.task_id collate "C", cw.idx) as w_type,
             array_agg(cw.blob order by cw.task_path collate "C", cw.task_id collate "C", cw.idx) as w_blob
        from checkpoint_writes cw
       where cw.thread_id = cp.thread_id and cw.checkpoint_ns = cp.checkpoint_ns
         and cw.checkpoint_id = cp.checkpoint_id) w on true`;

// Sends of checkpoints written before format 4 lived in their parent's writes (read once, on the way in).
const SELECT_PENDING_SENDS = `
  select checkpoint_id, array_agg(type order by task_path collate "C", task_id collate "C", idx) as types,
         array_agg(blob order by task_path collate "C", task_id collate "C", idx) as blobs
    from checkpoint_writes
   where thread_id = $1 and checkpoint_id = any($2) and channel = '${TASKS}'
   group by checkpoint_id`;

// The ancestors of a checkpoint, nearest first, walked while some asked-for channel has no stored value yet; each
// with its writes to those channels and the stored values it has for them. One statement, however long the chain.
const DELTA_HISTORY = `
  with recursive chain (checkpoint_id, parent_checkpoint_id, versions, wanted, depth) as (
      select p.checkpoint_id, p.parent_checkpoint_id, p.checkpoint -> 'channel_versions', $4::text[], 0
        from checkpoints t
        join checkpoints p on p.thread_id = t.thread_id and p.checkpoint_ns = t.checkpoint_ns
                          and p.checkpoint_id = t.parent_checkpoint_id
       where t.thread_id = $1 and t.checkpoint_ns = $2 and t.checkpoint_id = $3
    union all
      select p.checkpoint_id, p.parent_checkpoint_id, p.checkpoint -> 'channel_versions', rest.wanted, c.depth + 1
        from chain c
        cross join lateral (
          select array(select ch from unnest(c.wanted) ch where not exists (
            select 1 from checkpoint_blobs bl
             where bl.thread_id = $1 and bl.checkpoint_ns = $2 and bl.channel = ch
               and bl.version = c.versions ->> ch and bl.type <> 'empty')) as wanted) rest
        join checkpoints p on p.thread_id = $1 and p.checkpoint_ns = $2 and p.checkpoint_id = c.parent_checkpoint_id
       where cardinality(rest.wanted) > 0)
  select c.depth, c.wanted, w.w_task, w.w_channel, w.w_type, w.w_blob, s.s_channel, s.s_type, s.s_blob
    from chain c
    left join lateral (
      select array_agg(cw.task_id order by cw.task_path collate "C", cw.task_id collate "C", cw.idx) as w_task,
             array_agg(cw.channel order by cw.task_path collate "C", cw.task_id collate "C", cw.idx) as w_channel,
             array_agg(cw.type order by cw.task_path collate "C", cw.task_id collate "C", cw.idx) as w_type,
             array_agg(cw.blob order by cw.task_path collate "C", cw.task_id collate "C", cw.idx) as w_blob
        from checkpoint_writes cw
       where cw.thread_id = $1 and cw.checkpoint_ns = $2 and cw.checkpoint_id = c.checkpoint_id
         and cw.channel = any(c.wanted)) w on true
    left join lateral (
      select array_agg(bl.channel) as s_channel, array_agg(bl.type) as s_type, array_agg(bl.blob) as s_blob
        from checkpoint_blobs bl
       where bl.thread_id = $1 and bl.checkpoint_ns = $2 and bl.channel = any(c.wanted)
         and bl.version = c.versions ->> bl.channel and bl.type <> 'empty') s on true
   order by c.depth`;

const asBuffer = (bytes: Uint8Array): Buffer => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
// jsonb holds no NUL character, escaped or not.
const jsonText = (text: string): string =>
  text.replace(/\0/g, "").replace(/(?<!\\)((?:\\\\)*)\\u0000/g, "$1");

/**
 * Keel's checkpointer: LangGraph's `BaseCheckpointSaver` on Postgres, in the table layout of LangGraph's own
 * `PostgresSaver` (so a database written by either is read by both), with every operation one statement:
 *
 * - `put` writes the checkpoint and its changed channel values in one statement, one commit;
 * - `putWrites` is one multi-row insert, and the writes LangGraph hands over during a superstep go in the same
 *   statement as the checkpoint that ends it when `put` follows before the event loop turns (as it does at the end
 *   of every superstep), so a step of a graph costs one round trip instead of ~10;
 * - reads (`getTuple`, `list`, the delta-channel history of a checkpoint) are one query each;
 * - a write made under a {@link Fence} carries the fence check in the same statement: `keel_hold_fence` takes a
 *   share lock on the task row and fails (SQLSTATE {@link FENCED_SQLSTATE}) unless the task is still running under
 *   that token, so a takeover waits for a write in flight and every later write of the old holder is refused.
 *
 * Pending writes are stored with their task path and read back in LangGraph's order for a superstep's writes.
 * Subclasses say which writes are fenced (`fenceFor`) and may add to a checkpoint's metadata (`metadataFor`).
 */
export class KeelSaver extends BaseCheckpointSaver {
  private queued: QueuedWrites[] = [];
  private flushScheduled = false;
  /** Threads with a `put` on its way, and how many: their writes wait to go with the next one. */
  private readonly putting = new Map<string, number>();
  /** Whether statements are sent as named prepared statements (off for good after a pooler refuses one). */
  private prepare = true;

  constructor(
    readonly pool: pg.Pool,
    serde?: SerializerProtocol,
  ) {
    super(serde);
  }

  /** The fence a write for `config`'s thread is made under; none by default. */
  protected fenceFor(_config: RunnableConfig): Fence | undefined {
    return undefined;
  }

  /** The metadata stored with a checkpoint: what LangGraph gives, unchanged by default. */
  protected metadataFor(_config: RunnableConfig, metadata: CheckpointMetadata): CheckpointMetadata {
    return metadata;
  }

  /** Nothing to set up: the tables are made by Keel's migrations (`checkpoints/migrations/checkpoints.ts`). */
  async setup(): Promise<void> {}

  async getTuple(config: RunnableConfig): Promise<CheckpointTuple | undefined> {
    const {
      thread_id,
      checkpoint_ns = "",
      checkpoint_id,
    } = (config.configurable ?? {}) as Record<string, string | undefined>;
    const { rows } = checkpoint_id
      ? await this.run<ReadRow>(
          `${SELECT} where cp.thread_id = $1 and cp.checkpoint_ns = $2 and cp.checkpoint_id = $3`,
          [thread_id, checkpoint_ns, checkpoint_id],
        )
      : await this.run<ReadRow>(
          `${SELECT} where cp.thread_id = $1 and cp.checkpoint_ns = $2 order by cp.checkpoint_id desc limit 1`,
          [thread_id, checkpoint_ns],
        );
    const row = rows[0];
    if (!row) return undefined;
    await this.migratePendingSends([row]);
    return this.tupleOf(row);
  }

  async *list(config: RunnableConfig, options?: CheckpointListOptions): AsyncGenerator<CheckpointTuple> {
    const { filter, before, limit } = options ?? {};
    const configurable = (config?.configurable ?? {}) as Record<string, unknown>;
    const wheres: string[] = [];
    const args: unknown[] = [];
    const where = (clause: (n: string) => string, value: unknown) => {
      args.push(value);
      wheres.push(clause(`$${args.length}`));
    };
    if (configurable.thread_id) where((n) => `cp.thread_id = ${n}`, configurable.thread_id);
    if (configurable.checkpoint_ns !== undefined && configurable.checkpoint_ns !== null)
      where((n) => `cp.checkpoint_ns = ${n}`, configurable.checkpoint_ns);
    if (configurable.checkpoint_id) where((n) => `cp.checkpoint_id = ${n}`, configurable.checkpoint_id);
    if (filter && Object.keys(filter).length > 0)
      where((n) => `cp.metadata @> ${n}::jsonb`, jsonText(JSON.stringify(filter)));
    const beforeId = (before?.configurable as Record<string, unknown> | undefined)?.checkpoint_id;
    if (beforeId !== undefined) where((n) => `cp.checkpoint_id < ${n}`, beforeId);
    let text = `${SELECT}${wheres.length ? ` where ${wheres.join(" and ")}` : ""} order by cp.checkpoint_id desc`;
    if (limit !== undefined) {
      args.push(Math.max(0, Math.floor(Number(limit))));
      text += ` limit $${args.length}`;
    }
    const { rows } = await this.run<ReadRow>(text, args);
    await this.migratePendingSends(rows);
    for (const row of rows) yield await this.tupleOf(row);
  }

  async put(
    config: RunnableConfig,
    checkpoint: Checkpoint,
    metadata: CheckpointMetadata,
    newVersions: ChannelVersions,
  ): Promise<RunnableConfig> {
    if (config.configurable === undefined) throw new Error(`Missing "configurable" field in "config" param`);
    const {
      thread_id,
      checkpoint_ns = "",
      checkpoint_id,
    } = config.configurable as Record<string, string | undefined>;
    if (!thread_id) throw new Error(`Missing "thread_id" field in the config's "configurable"`);
    const blobs: CheckpointRow["blobs"] = { channel: [], version: [], type: [], blob: [] };
    await Promise.all(
      Object.entries(newVersions).map(async ([channel, version], i) => {
        const [type, value] =
          channel in checkpoint.channel_values
            ? await this.serde.dumpsTyped(checkpoint.channel_values[channel])
            : ["empty", null];
        blobs.channel[i] = channel;
        blobs.version[i] = String(version);
        blobs.type[i] = type;
        blobs.blob[i] = value ? asBuffer(value) : null;
      }),
    );
    const { channel_values: _values, ...stored } = checkpoint;
    const [, dumpedMetadata] = await this.serde.dumpsTyped(this.metadataFor(config, metadata));
    const row: CheckpointRow = {
      threadId: thread_id,
      ns: checkpoint_ns,
      checkpointId: checkpoint.id,
      parentId: checkpoint_id,
      checkpoint: jsonText(JSON.stringify(stored)),
      metadata: jsonText(new TextDecoder().decode(dumpedMetadata)),
      blobs,
    };
    const fence = this.fenceFor(config);
    // The writes of this thread still waiting go in the same statement (LangGraph has handed them over during the
    // superstep this checkpoint ends).
    const writes = this.take((q) => q.threadId === thread_id && sameFence(q.fence, fence));
    this.putting.set(thread_id, (this.putting.get(thread_id) ?? 0) + 1);
    try {
      await this.write(fence, writes, row);
      for (const w of writes) w.resolve();
    } catch (error) {
      for (const w of writes) w.reject(error);
      throw error;
    } finally {
      const left = this.putting.get(thread_id)! - 1;
      if (left > 0) this.putting.set(thread_id, left);
      else this.putting.delete(thread_id);
      // Writes held for this put's successor go on their own if no put takes them before the loop turns.
      if (this.queued.length > 0) this.scheduleFlush();
    }
    return { configurable: { thread_id, checkpoint_ns, checkpoint_id: checkpoint.id } };
  }

  async putWrites(
    config: RunnableConfig,
    writes: PendingWrite[],
    taskId: string,
    taskPath = "",
  ): Promise<void> {
    const {
      thread_id,
      checkpoint_ns = "",
      checkpoint_id,
    } = (config.configurable ?? {}) as Record<string, string | undefined>;
    if (!thread_id) throw new Error(`Missing "thread_id" field in the config's "configurable"`);
    if (!checkpoint_id) throw new Error(`Missing "checkpoint_id" field in the config's "configurable"`);
    if (writes.length === 0) return;
    const rows = await Promise.all(
      writes.map(async ([channel, value], idx): Promise<WriteRow> => {
        const [type, bytes] = await this.serde.dumpsTyped(value);
        return [
          thread_id,
          checkpoint_ns,
          checkpoint_id,
          taskId,
          taskPath,
          WRITES_IDX_MAP[channel] ?? idx,
          channel,
          type,
          asBuffer(bytes),
        ];
      }),
    );
    const fence = this.fenceFor(config);
    return new Promise<void>((resolve, reject) => {
      this.queued.push({ threadId: thread_id, fence, rows, resolve, reject });
      this.scheduleFlush();
    });
  }

  async deleteThread(threadId: string): Promise<void> {
    await this.pool.query(
      `with b as (delete from checkpoint_blobs where thread_id = $1),
            w as (delete from checkpoint_writes where thread_id = $1)
       delete from checkpoints where thread_id = $1`,
      [threadId],
    );
  }

  override async getDeltaChannelHistory(options: {
    config: RunnableConfig;
    channels: string[];
  }): Promise<Record<string, DeltaChannelHistory>> {
    const { config, channels } = options;
    if (channels.length === 0) return {};
    const {
      thread_id,
      checkpoint_ns = "",
      checkpoint_id,
    } = (config.configurable ?? {}) as Record<string, string | undefined>;
    const target =
      checkpoint_id ??
      ((await this.getTuple(config))?.config.configurable?.checkpoint_id as string | undefined);
    const result: Record<string, DeltaChannelHistory> = {};
    for (const ch of channels) result[ch] = { writes: [] };
    if (!thread_id || !target) return result;
    const { rows } = await this.run<{
      wanted: string[];
      w_task: string[] | null;
      w_channel: string[] | null;
      w_type: string[] | null;
      w_blob: Buffer[] | null;
      s_channel: string[] | null;
      s_type: string[] | null;
      s_blob: (Buffer | null)[] | null;
    }>(DELTA_HISTORY, [thread_id, checkpoint_ns, target, [...new Set(channels)]]);
    // Nearest ancestor first: its writes come after its parent's, so each channel's list is reversed at the end.
    const newestFirst: Record<string, CheckpointPendingWrite[]> = {};
    for (const ch of channels) newestFirst[ch] = [];
    for (const row of rows) {
      const writes = await this.writesOf(row.w_task, row.w_channel, row.w_type, row.w_blob);
      const perChannel: Record<string, CheckpointPendingWrite[]> = {};
      for (const write of writes) (perChannel[write[1]] ??= []).push(write);
      for (const [ch, block] of Object.entries(perChannel)) newestFirst[ch]?.push(...block.reverse());
      for (const [i, ch] of (row.s_channel ?? []).entries()) {
        if (!(ch in result) || "seed" in result[ch]!) continue;
        result[ch]!.seed = await this.serde.loadsTyped(row.s_type![i]!, row.s_blob![i] ?? new Uint8Array());
      }
    }
    for (const ch of channels) result[ch]!.writes = newestFirst[ch]!.reverse();
    return result;
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => this.flush());
  }

  /**
   * Sends the queued writes no `put` took: one statement per fence. Writes of a thread whose `put` is on its way
   * wait for it: LangGraph calls the next `put` as soon as that one returns, and they go with it.
   */
  private flush(): void {
    this.flushScheduled = false;
    for (;;) {
      const first = this.queued.find((q) => !this.putting.has(q.threadId));
      if (!first) break;
      const fence = first.fence;
      const group = this.take((q) => !this.putting.has(q.threadId) && sameFence(q.fence, fence));
      this.write(fence, group).then(
        () => group.forEach((w) => w.resolve()),
        (error: unknown) => group.forEach((w) => w.reject(error)),
      );
    }
  }

  private take(match: (q: QueuedWrites) => boolean): QueuedWrites[] {
    const taken = this.queued.filter(match);
    if (taken.length > 0) this.queued = this.queued.filter((q) => !match(q));
    return taken;
  }

  /**
   * One statement: the fence check (if any), the writes, and the checkpoint with its channel values (if any).
   * A write to a key already stored is kept for an ordinary write (the first one stands, as in every LangGraph
   * saver) and replaced for a special one (error, interrupt, resume: negative index).
   */
  private async write(
    fence: Fence | undefined,
    queued: QueuedWrites[],
    checkpoint?: CheckpointRow,
  ): Promise<void> {
    const rows = dedupeWrites(queued.flatMap((q) => q.rows));
    if (rows.length === 0 && !checkpoint) return;
    const args: unknown[] = [];
    const arg = (value: unknown) => `$${args.push(value)}`;
    const ctes: string[] = [];
    // The fence is read by the statement's main part only: data-modifying CTEs always run to the end, and if the
    // fence refuses, the whole statement (every CTE) is rolled back. Joined into each insert instead, it cost a
    // third of a step.
    let fenced = false;
    if (fence) {
      if (!UUID.test(fence.taskId) || !TOKEN.test(fence.token))
        throw new Error(
          `cannot fence a write with task ${JSON.stringify(fence.taskId)} and token ${fence.token}`,
        );
      ctes.push(`fence as (select keel_hold_fence(${arg(fence.taskId)}::uuid, ${arg(fence.token)}::bigint))`);
      fenced = true;
    }
    if (rows.length > 0) {
      const column = (i: number) => rows.map((r) => r[i]);
      ctes.push(`writes as (
        insert into checkpoint_writes (thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, type, blob)
        select w.* from unnest(${arg(column(0))}::text[], ${arg(column(1))}::text[], ${arg(column(2))}::text[],
          ${arg(column(3))}::text[], ${arg(column(4))}::text[], ${arg(column(5))}::int[], ${arg(column(6))}::text[],
          ${arg(column(7))}::text[], ${arg(column(8))}::bytea[]) as w
        on conflict (thread_id, checkpoint_ns, checkpoint_id, task_id, idx) do update
          set channel = excluded.channel, type = excluded.type, blob = excluded.blob, task_path = excluded.task_path
          where excluded.idx < 0)`);
    }
    let main: string;
    if (checkpoint) {
      const t = arg(checkpoint.threadId);
      const ns = arg(checkpoint.ns);
      if (checkpoint.blobs.channel.length > 0) {
        const b = checkpoint.blobs;
        ctes.push(`blobs as (
          insert into checkpoint_blobs (thread_id, checkpoint_ns, channel, version, type, blob)
          select ${t}, ${ns}, b.* from unnest(${arg(b.channel)}::text[], ${arg(b.version)}::text[],
            ${arg(b.type)}::text[], ${arg(b.blob)}::bytea[]) as b
          on conflict (thread_id, checkpoint_ns, channel, version) do nothing)`);
      }
      main = `insert into checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, checkpoint, metadata)
        select ${t}, ${ns}, ${arg(checkpoint.checkpointId)}, ${arg(checkpoint.parentId ?? null)},
          ${arg(checkpoint.checkpoint)}::jsonb, ${arg(checkpoint.metadata)}::jsonb${fenced ? " from fence" : ""}
        on conflict (thread_id, checkpoint_ns, checkpoint_id)
          do update set checkpoint = excluded.checkpoint, metadata = excluded.metadata`;
    } else {
      // The writes are the statement; the fence (if any) is read by its main part.
      main = fenced ? "select 1 from fence" : "select 1";
    }
    await this.run(`${ctes.length ? `with ${ctes.join(",\n")} ` : ""}${main}`, args);
  }

  /**
   * One statement, as a named prepared statement: planning these statements is a large part of their cost, and a
   * connection plans each once. A pooler that does not keep prepared statements (PgBouncer in transaction mode
   * before 1.21) refuses one; from then on this saver sends them unnamed.
   */
  private async run<R extends pg.QueryResultRow>(
    text: string,
    values: unknown[],
  ): Promise<pg.QueryResult<R>> {
    if (!this.prepare) return this.pool.query<R>(text, values);
    try {
      return await this.pool.query<R>({ name: statementName(text), text, values });
    } catch (error) {
      const code = (error as { code?: string }).code;
      // 26000: no such prepared statement; 42P05: it exists already (a pooler gave this session another server).
      if (code !== "26000" && code !== "42P05") throw error;
      this.prepare = false;
      return this.pool.query<R>(text, values);
    }
  }

  private async tupleOf(row: ReadRow): Promise<CheckpointTuple> {
    const channelValues: Record<string, unknown> = {};
    for (const [i, channel] of (row.b_channel ?? []).entries()) {
      channelValues[channel] = await this.serde.loadsTyped(
        row.b_type![i]!,
        row.b_blob![i] ?? new Uint8Array(),
      );
    }
    const at = (checkpointId: string) => ({
      configurable: {
        thread_id: row.thread_id,
        checkpoint_ns: row.checkpoint_ns,
        checkpoint_id: checkpointId,
      },
    });
    const [type, dumped] = await this.serde.dumpsTyped(row.metadata);
    return {
      config: at(row.checkpoint_id),
      checkpoint: {
        ...row.checkpoint,
        channel_versions: row.checkpoint.channel_versions ?? {},
        versions_seen: row.checkpoint.versions_seen ?? {},
        channel_values: channelValues,
      },
      metadata: (await this.serde.loadsTyped(type, dumped)) as CheckpointMetadata,
      parentConfig: row.parent_checkpoint_id ? at(row.parent_checkpoint_id) : undefined,
      pendingWrites: await this.writesOf(row.w_task, row.w_channel, row.w_type, row.w_blob),
    };
  }

  private async writesOf(
    tasks: string[] | null,
    channels: string[] | null,
    types: string[] | null,
    blobs: Buffer[] | null,
  ): Promise<CheckpointPendingWrite[]> {
    if (!tasks) return [];
    return Promise.all(
      tasks.map(async (task, i): Promise<CheckpointPendingWrite> => [
        task,
        channels![i]!,
        await this.serde.loadsTyped(types![i]!, blobs![i]!),
      ]),
    );
  }

  /** Checkpoints older than format 4 kept their sends in the parent's writes: they become the `__pregel_tasks` channel. */
  private async migratePendingSends(rows: ReadRow[]): Promise<void> {
    const old = rows.filter((r) => r.checkpoint.v < 4 && r.parent_checkpoint_id != null);
    if (old.length === 0) return;
    const { rows: sends } = await this.pool.query<{
      checkpoint_id: string;
      types: string[];
      blobs: Buffer[];
    }>(SELECT_PENDING_SENDS, [old[0]!.thread_id, old.map((r) => r.parent_checkpoint_id)]);
    for (const send of sends) {
      const values = await Promise.all(send.types.map((t, i) => this.serde.loadsTyped(t, send.blobs[i]!)));
      const [type, bytes] = await this.serde.dumpsTyped(values);
      for (const row of old.filter((r) => r.parent_checkpoint_id === send.checkpoint_id)) {
        (row.b_channel ??= []).push(TASKS);
        (row.b_type ??= []).push(type);
        (row.b_blob ??= []).push(asBuffer(bytes));
        const versions = Object.values(row.checkpoint.channel_versions);
        row.checkpoint.channel_versions[TASKS] =
          versions.length > 0 ? maxChannelVersion(...versions) : this.getNextVersion(undefined);
      }
    }
  }
}

const names = new Map<string, string>();
/** A statement's name: from its text, so that savers sharing a pool (and a connection) agree on it. */
function statementName(text: string): string {
  let name = names.get(text);
  if (!name) {
    name = `keel_saver_${createHash("sha256").update(text).digest("hex").slice(0, 24)}`;
    names.set(text, name);
  }
  return name;
}

const sameFence = (a: Fence | undefined, b: Fence | undefined) =>
  a === b || (a !== undefined && b !== undefined && a.taskId === b.taskId && a.token === b.token);

/** One row per key (a statement may not upsert a row twice): ordinary writes keep the first, special the last. */
function dedupeWrites(rows: WriteRow[]): WriteRow[] {
  const byKey = new Map<string, WriteRow>();
  for (const row of rows) {
    const key = JSON.stringify([row[0], row[1], row[2], row[3], row[5]]);
    if (row[5] >= 0 && byKey.has(key)) continue;
    byKey.set(key, row);
  }
  return [...byKey.values()];
}
