import type pg from "pg";

/** A pool or one client (a transaction's): what these functions run their statements on. */
type Queryable = pg.Pool | pg.ClientBase;

/** What pruning one thread removed (or, in a dry run, would remove). */
export interface PrunedCheckpoints {
  checkpoints: number;
  writes: number;
  blobs: number;
  /** Stored bytes of the removed rows' values (checkpoint and metadata JSON, channel values, pending writes). */
  bytes: number;
}

export const NOTHING_PRUNED: PrunedCheckpoints = { checkpoints: 0, writes: 0, blobs: 0, bytes: 0 };

export function addPruned(a: PrunedCheckpoints, b: PrunedCheckpoints): PrunedCheckpoints {
  return {
    checkpoints: a.checkpoints + b.checkpoints,
    writes: a.writes + b.writes,
    blobs: a.blobs + b.blobs,
    bytes: a.bytes + b.bytes,
  };
}

/** Removes every checkpoint, pending write and channel value of a thread, in the caller's transaction. */
export async function deleteThreadCheckpoints(
  client: Queryable,
  threadId: string,
): Promise<PrunedCheckpoints> {
  const { rows } = await client.query<{ checkpoints: number; writes: number; blobs: number; bytes: string }>(
    `with c as (delete from checkpoints where thread_id = $1
                returning pg_column_size(checkpoint) + pg_column_size(metadata) as size),
          w as (delete from checkpoint_writes where thread_id = $1 returning pg_column_size(blob) as size),
          b as (delete from checkpoint_blobs where thread_id = $1 returning coalesce(pg_column_size(blob), 0) as size)
     select (select count(*) from c)::int as checkpoints, (select count(*) from w)::int as writes,
            (select count(*) from b)::int as blobs,
            coalesce((select sum(size) from c), 0) + coalesce((select sum(size) from w), 0)
              + coalesce((select sum(size) from b), 0) as bytes`,
    [threadId],
  );
  return { ...rows[0]!, bytes: Number(rows[0]!.bytes) };
}

/**
 * Copies every checkpoint, pending write and channel value of thread `from` to thread `to` (the Agent Server
 * API's thread copy), in one statement in the caller's transaction.
 */
export async function copyThreadCheckpoints(client: Queryable, from: string, to: string): Promise<void> {
  await client.query(
    `with c as (insert into checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type,
                                         checkpoint, metadata)
                select $2, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint, metadata
                  from checkpoints where thread_id = $1),
          b as (insert into checkpoint_blobs (thread_id, checkpoint_ns, channel, version, type, blob)
                select $2, checkpoint_ns, channel, version, type, blob from checkpoint_blobs where thread_id = $1)
     insert into checkpoint_writes (thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel,
                                    type, blob)
     select $2, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, type, blob
       from checkpoint_writes where thread_id = $1`,
    [from, to],
  );
}

/**
 * Removes the channel values of a thread that no checkpoint of it points at any more (after checkpoints were
 * removed: a rolled-back run), in the caller's transaction; how many.
 */
export async function deleteUnreferencedValues(client: Queryable, threadId: string): Promise<number> {
  const { rowCount } = await client.query(
    `delete from checkpoint_blobs bl where bl.thread_id = $1 and not exists (
       select 1 from checkpoints cp where cp.thread_id = $1 and cp.checkpoint_ns = bl.checkpoint_ns
          and cp.checkpoint -> 'channel_versions' ->> bl.channel = bl.version)`,
    [threadId],
  );
  return rowCount ?? 0;
}

interface ChainRow {
  checkpoint_ns: string;
  checkpoint_id: string;
  parent_checkpoint_id: string | null;
  versions: Record<string, string | number> | null;
  counters: Record<string, unknown> | null;
}

/**
 * Keeps, in each checkpoint namespace of a thread (or, with `subgraphs: "drop"`, in the root namespace alone), only
 * its latest checkpoint and what that checkpoint's state needs, in the caller's transaction. A delta channel (LangGraph's `DeltaChannel`) is stored as writes since its
 * last snapshot, and its value is rebuilt from the ancestors' writes back to the nearest ancestor that stored it:
 * the latest checkpoint's metadata names the delta channels with writes since their snapshot
 * (`counters_since_delta_snapshot`), and the ancestors back to a stored value of each stay, with their writes. Every
 * other checkpoint, the writes pending on it and every channel value no kept checkpoint points at go.
 */
export async function keepLatestCheckpoint(
  client: Queryable,
  threadId: string,
  options: { subgraphs?: "latest" | "drop" } = {},
): Promise<PrunedCheckpoints> {
  const { rows: all } = await client.query<ChainRow>(
    `select checkpoint_ns, checkpoint_id, parent_checkpoint_id, checkpoint -> 'channel_versions' as versions,
            metadata -> 'counters_since_delta_snapshot' as counters
       from checkpoints where thread_id = $1`,
    [threadId],
  );
  // A subgraph's checkpoints (another namespace) matter only while it may be resumed: a thread that finished
  // cleanly can drop them, and its root's state is all there is.
  const rows = options.subgraphs === "drop" ? all.filter((r) => r.checkpoint_ns === "") : all;
  if (all.length === 0) return NOTHING_PRUNED;
  const byNs = new Map<string, Map<string, ChainRow>>();
  for (const row of rows) {
    let ns = byNs.get(row.checkpoint_ns);
    if (!ns) byNs.set(row.checkpoint_ns, (ns = new Map<string, ChainRow>()));
    ns.set(row.checkpoint_id, row);
  }
  // The stored (non-empty) values of the delta channels the latest checkpoints still need, by namespace.
  const wanted = [...byNs.values()].flatMap((ns) => Object.keys(latestOf(ns).counters ?? {}));
  const stored = new Set<string>();
  if (wanted.length > 0) {
    const { rows: blobs } = await client.query<{ checkpoint_ns: string; channel: string; version: string }>(
      `select checkpoint_ns, channel, version from checkpoint_blobs
        where thread_id = $1 and channel = any($2) and type <> 'empty'`,
      [threadId, [...new Set(wanted)]],
    );
    for (const b of blobs) stored.add(JSON.stringify([b.checkpoint_ns, b.channel, b.version]));
  }
  const has = (row: ChainRow, channel: string) =>
    row.versions?.[channel] !== undefined &&
    stored.has(JSON.stringify([row.checkpoint_ns, channel, String(row.versions[channel])]));
  const keepNs: string[] = [];
  const keepIds: string[] = [];
  for (const [ns, chain] of byNs) {
    const latest = latestOf(chain);
    keepNs.push(ns);
    keepIds.push(latest.checkpoint_id);
    let missing = Object.keys(latest.counters ?? {}).filter((ch) => !has(latest, ch));
    let cursor = latest.parent_checkpoint_id ? chain.get(latest.parent_checkpoint_id) : undefined;
    while (missing.length > 0 && cursor) {
      keepNs.push(ns);
      keepIds.push(cursor.checkpoint_id);
      const at = cursor;
      missing = missing.filter((ch) => !has(at, ch));
      cursor = cursor.parent_checkpoint_id ? chain.get(cursor.parent_checkpoint_id) : undefined;
    }
  }
  if (keepIds.length === all.length) return NOTHING_PRUNED;
  const { rows: out } = await client.query<{
    checkpoints: number;
    writes: number;
    blobs: number;
    bytes: string;
  }>(
    `with kept (checkpoint_ns, checkpoint_id) as (select * from unnest($2::text[], $3::text[])),
          c as (delete from checkpoints cp where cp.thread_id = $1
                  and not exists (select 1 from kept k
                                   where k.checkpoint_ns = cp.checkpoint_ns and k.checkpoint_id = cp.checkpoint_id)
                returning pg_column_size(cp.checkpoint) + pg_column_size(cp.metadata) as size),
          w as (delete from checkpoint_writes cw where cw.thread_id = $1
                  and not exists (select 1 from kept k
                                   where k.checkpoint_ns = cw.checkpoint_ns and k.checkpoint_id = cw.checkpoint_id)
                returning pg_column_size(cw.blob) as size),
          b as (delete from checkpoint_blobs bl where bl.thread_id = $1
                  and not exists (select 1 from kept k join checkpoints cp
                                    on cp.thread_id = $1 and cp.checkpoint_ns = k.checkpoint_ns
                                   and cp.checkpoint_id = k.checkpoint_id
                                 where cp.checkpoint_ns = bl.checkpoint_ns
                                   and cp.checkpoint -> 'channel_versions' ->> bl.channel = bl.version)
                returning coalesce(pg_column_size(bl.blob), 0) as size)
     select (select count(*) from c)::int as checkpoints, (select count(*) from w)::int as writes,
            (select count(*) from b)::int as blobs,
            coalesce((select sum(size) from c), 0) + coalesce((select sum(size) from w), 0)
              + coalesce((select sum(size) from b), 0) as bytes`,
    [threadId, keepNs, keepIds],
  );
  return { ...out[0]!, bytes: Number(out[0]!.bytes) };
}

/** LangGraph's checkpoint ids sort in the order they were written; the latest is the greatest. */
function latestOf(chain: Map<string, ChainRow>): ChainRow {
  let latest: ChainRow | undefined;
  for (const row of chain.values()) if (!latest || row.checkpoint_id > latest.checkpoint_id) latest = row;
  return latest!;
}

/** The checkpoint tables' size on disk (with indexes and TOAST), and their rows when counted. */
export interface CheckpointTablesSize {
  bytes: number;
  rows?: { checkpoints: number; writes: number; blobs: number };
}

/** Their size; `count` also counts their rows (a scan of each table: for a command, not a health check). */
export async function checkpointTablesSize(
  db: Queryable,
  options: { count?: boolean } = {},
): Promise<CheckpointTablesSize> {
  const { rows } = await db.query<{ bytes: string }>(
    `select pg_total_relation_size('checkpoints') + pg_total_relation_size('checkpoint_writes')
              + pg_total_relation_size('checkpoint_blobs') as bytes`,
  );
  const bytes = Number(rows[0]!.bytes);
  if (!options.count) return { bytes };
  const { rows: counted } = await db.query<{ checkpoints: number; writes: number; blobs: number }>(
    `select (select count(*) from checkpoints)::int as checkpoints, (select count(*) from checkpoint_writes)::int as writes,
            (select count(*) from checkpoint_blobs)::int as blobs`,
  );
  return { bytes, rows: counted[0]! };
}
