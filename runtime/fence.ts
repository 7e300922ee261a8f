import type { RunnableConfig } from "@langchain/core/runnables";
import type { CheckpointMetadata } from "@langchain/langgraph-checkpoint";
import type pg from "pg";
import { FENCED_SQLSTATE, KeelSaver, type Fence } from "../checkpoints/keel-saver.js";
import { FencedOutError } from "./task/rules.js";
import { runContext } from "../graphs/run-context.js";

export type { Fence } from "../checkpoints/keel-saver.js";

/** Configuration keys that say where a checkpoint is, not what wrote it: never copied into its metadata. */
const CHECKPOINT_KEYS = new Set(["checkpoint_id", "checkpoint_ns", "checkpoint_map", "thread_ts"]);

/**
 * The worker's checkpointer: {@link KeelSaver} with the fences of the tasks this process holds. Every checkpoint
 * write for a held thread is refused (as a {@link FencedOutError}) unless the task is still running under this
 * worker's fencing token, and a takeover (which bumps the token) waits for a write in flight to commit; so a worker
 * whose lease expired or whose task was cancelled stops at its next step instead of writing over the new owner.
 */
export class FencedSaver extends KeelSaver {
  /** thread id -> the task this process holds it under (the thread itself, or a run's task) and the token. */
  readonly tokens = new Map<string, Fence>();

  constructor(pool: pg.Pool) {
    super(pool);
  }

  protected override fenceFor(config: RunnableConfig): Fence | undefined {
    const threadId = runContext(config).threadId;
    return threadId ? this.tokens.get(threadId) : undefined;
  }

  /**
   * A checkpoint's metadata also carries the run's metadata and plain configuration (as LangGraph's servers do), so
   * history can be filtered by a run's metadata and a checkpoint names the run that wrote it.
   */
  protected override metadataFor(config: RunnableConfig, metadata: CheckpointMetadata): CheckpointMetadata {
    const carried = Object.fromEntries(
      Object.entries(config.configurable ?? {}).filter(
        ([key, value]) =>
          !key.startsWith("__") &&
          !key.startsWith("keel_") &&
          !CHECKPOINT_KEYS.has(key) &&
          typeof value !== "object",
      ),
    );
    return { ...carried, ...config.metadata, ...metadata };
  }

  override async put(...args: Parameters<KeelSaver["put"]>): Promise<RunnableConfig> {
    return fencedOut(this.fenceFor(args[0]), () => super.put(...args));
  }

  override async putWrites(...args: Parameters<KeelSaver["putWrites"]>): Promise<void> {
    return fencedOut(this.fenceFor(args[0]), () => super.putWrites(...args));
  }
}

/** The database's refusal of a fenced write, as the runtime's typed failure. */
async function fencedOut<T>(fence: Fence | undefined, write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (error) {
    if (fence && (error as { code?: string }).code === FENCED_SQLSTATE)
      throw new FencedOutError(fence.taskId);
    throw error;
  }
}
