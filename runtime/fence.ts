import type { RunnableConfig } from "@langchain/core/runnables";
import { PostgresSaver } from "@langchain/langgraph-checkpoint-postgres";
import type pg from "pg";
import { FencedOutError } from "./status.js";

/**
 * PostgresSaver that refuses checkpoint writes from a worker that no longer holds the task: before each write
 * it checks that the task still carries this worker's fencing token. A worker whose lease expired (or whose task
 * was cancelled) therefore stops at its next step instead of writing over the new owner's progress.
 */
export class FencedSaver extends PostgresSaver {
  /** thread id -> fencing token this process holds for it. */
  readonly tokens = new Map<string, string>();

  constructor(private readonly fencePool: pg.Pool) {
    super(fencePool);
  }

  private async assertHeld(config: RunnableConfig): Promise<void> {
    const threadId = config.configurable?.thread_id as string | undefined;
    const token = threadId ? this.tokens.get(threadId) : undefined;
    if (!threadId || token === undefined) return;
    const { rowCount } = await this.fencePool.query(
      "select 1 from tasks where id = $1 and fencing_token = $2 and status = 'running'",
      [threadId, token],
    );
    if (!rowCount) throw new FencedOutError(threadId);
  }

  override async put(...args: Parameters<PostgresSaver["put"]>): Promise<RunnableConfig> {
    await this.assertHeld(args[0]);
    return super.put(...args);
  }

  override async putWrites(...args: Parameters<PostgresSaver["putWrites"]>): Promise<void> {
    await this.assertHeld(args[0]);
    return super.putWrites(...args);
  }
}
