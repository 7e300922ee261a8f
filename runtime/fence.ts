import { AsyncLocalStorage } from "node:async_hooks";
import type { RunnableConfig } from "@langchain/core/runnables";
import { PostgresSaver } from "@langchain/langgraph-checkpoint-postgres";
import type pg from "pg";
import { FencedOutError } from "./task/rules.js";
import { SystemError } from "../core/errors.js";
import { runContext } from "../graphs/run-context.js";

export interface Fence {
  taskId: string;
  token: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const TOKEN = /^\d{1,19}$/;
/** Raised by keel_hold_fence (migration 8) when the task is no longer held with the token. */
const FENCED_SQLSTATE = "KF001";
/** Configuration keys that say where a checkpoint is, not what wrote it: never copied into its metadata. */
const CHECKPOINT_KEYS = new Set(["checkpoint_id", "checkpoint_ns", "checkpoint_map", "thread_ts"]);

/**
 * The statement that opens a fenced write transaction. It is sent with BEGIN as one simple query, so fencing
 * costs no extra round trip; ids and tokens come from the task row and are checked before they are inlined.
 */
function fencedBegin({ taskId, token }: Fence): string {
  if (!UUID.test(taskId) || !TOKEN.test(token)) {
    throw new SystemError(
      "internal",
      `cannot fence thread ${JSON.stringify(taskId)} with token ${JSON.stringify(token)}: not a task id and token`,
    );
  }
  return `BEGIN; SELECT keel_hold_fence('${taskId}'::uuid, ${token}::bigint)`;
}

/**
 * The pool PostgresSaver writes through: a connection taken during a fenced write opens its transaction with
 * the fence check. Everything else (reads, unfenced threads) passes straight to the real pool.
 */
function fencedPool(pool: pg.Pool, current: AsyncLocalStorage<Fence>): pg.Pool {
  const connect = async (): Promise<pg.PoolClient> => {
    const client = await pool.connect();
    const fence = current.getStore();
    if (!fence) return client;
    return new Proxy(client, {
      get(target, property, receiver) {
        if (property === "query") {
          return (text: unknown, ...rest: unknown[]) =>
            text === "BEGIN"
              ? target.query(fencedBegin(fence))
              : (target.query as (...a: unknown[]) => unknown)(text, ...rest);
        }
        const value: unknown = Reflect.get(target, property, receiver);
        return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
  };
  return new Proxy(pool, {
    get(target, property, receiver) {
      if (property === "connect") return connect;
      const value: unknown = Reflect.get(target, property, receiver);
      return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

/**
 * PostgresSaver that refuses checkpoint writes from a worker that no longer holds the task. Every write
 * transaction for a held thread first calls keel_hold_fence(task, token), which takes a share lock on the task
 * row and fails unless the task is still running under this worker's fencing token. A takeover (which bumps the
 * token) waits for a write in flight to commit; every later write of the old holder fails, so a worker whose
 * lease expired or whose task was cancelled stops at its next step instead of writing over the new owner.
 */
export class FencedSaver extends PostgresSaver {
  /** thread id -> the task this process holds it under (the thread itself, or a run's task) and the token. */
  readonly tokens = new Map<string, Fence>();
  private readonly current: AsyncLocalStorage<Fence>;

  constructor(pool: pg.Pool) {
    const current = new AsyncLocalStorage<Fence>();
    super(fencedPool(pool, current));
    this.current = current;
  }

  private async fenced<T>(config: RunnableConfig, write: () => Promise<T>): Promise<T> {
    const threadId = runContext(config).threadId;
    const fence = threadId ? this.tokens.get(threadId) : undefined;
    if (!fence) return write();
    try {
      return await this.current.run(fence, write);
    } catch (error) {
      if ((error as { code?: string }).code === FENCED_SQLSTATE) throw new FencedOutError(fence.taskId);
      throw error;
    }
  }

  /**
   * Writes a checkpoint with the run's metadata and configuration in its metadata (as LangGraph's servers do), so
   * history can be filtered by a run's metadata and a checkpoint names the run that wrote it.
   */
  override put(...args: Parameters<PostgresSaver["put"]>): Promise<RunnableConfig> {
    const [config, checkpoint, metadata, versions] = args;
    const carried = Object.fromEntries(
      Object.entries(config.configurable ?? {}).filter(
        ([key, value]) =>
          !key.startsWith("__") &&
          !key.startsWith("keel_") &&
          !CHECKPOINT_KEYS.has(key) &&
          typeof value !== "object",
      ),
    );
    const merged = { ...carried, ...config.metadata, ...metadata } as typeof metadata;
    return this.fenced(config, () => super.put(config, checkpoint, merged, versions));
  }

  override putWrites(...args: Parameters<PostgresSaver["putWrites"]>): Promise<void> {
    return this.fenced(args[0], () => super.putWrites(...args));
  }
}
