import { Command } from "@langchain/langgraph";
import type { PostgresSaver } from "@langchain/langgraph-checkpoint-postgres";
import type { AgentResult, Plan } from "../agents/contracts.js";
import { openDatabase, type Database } from "../checkpoints/database.js";
import { createCheckpointer } from "../checkpoints/saver.js";
import type { KeelConfig } from "../core/config.js";
import { InputError, NotFoundError } from "../core/errors.js";
import { ApprovalRequest, ApprovalResume, checkEditedArgs } from "../graphs/approval.js";
import { defaultDeps, type GraphDeps } from "../graphs/deps.js";
import { buildOrchestratorGraph } from "../graphs/orchestrator.js";
import { asProgressEvent, type ProgressEvent } from "../graphs/progress.js";
import { checkRequest } from "../policy/input.js";

/** One approval a run is waiting for. */
export interface PendingApproval {
  interrupt_id: string;
  request: ApprovalRequest;
}

/** Where a run stands after a drive: finished, or waiting for a person. */
export interface RunOutcome {
  thread_id: string;
  status: "done" | "waiting_for_approval" | "failed";
  plan?: Plan;
  results: AgentResult[];
  final_answer?: string;
  pending: PendingApproval[];
}

export interface DriveOptions {
  onEvent?: (event: ProgressEvent) => void;
  signal?: AbortSignal;
}

/**
 * Runs the orchestrator with PostgresSaver: start a thread, resume it with a decision, read where it stands.
 * Every call continues from the checkpoint, so a run interrupted in one process is resumed by another.
 */
export class Runner {
  private constructor(
    readonly db: Database,
    private readonly checkpointer: PostgresSaver,
    private readonly graph: ReturnType<ReturnType<typeof buildOrchestratorGraph>["compile"]>,
  ) {}

  /** Opens the database (embedded unless DATABASE_URL), sets up checkpoints, compiles the graph. */
  static async open(config: KeelConfig, deps?: Partial<GraphDeps>): Promise<Runner> {
    const db = await openDatabase(config);
    try {
      const checkpointer = await createCheckpointer(db);
      const graph = buildOrchestratorGraph({
        ...defaultDeps(config),
        db: () => Promise.resolve(db.pool),
        ...deps,
      }).compile({ checkpointer, name: "orchestrator" });
      return new Runner(db, checkpointer, graph);
    } catch (error) {
      await db.close();
      throw error;
    }
  }

  async close(): Promise<void> {
    await this.db.close();
  }

  /** Starts a new run on `threadId`. The request is checked before anything is stored. */
  async start(
    request: string,
    threadId: string,
    maxChars: number,
    options: DriveOptions = {},
  ): Promise<RunOutcome> {
    const checked = checkRequest(request, maxChars);
    if (await this.exists(threadId)) {
      throw new InputError(
        `Thread ${threadId} already has a run. Use keel resume, or pick another --thread-id.`,
        "conflict",
      );
    }
    return this.drive({ request: checked }, threadId, options);
  }

  /**
   * Resumes a run that waits for approval. The answer is validated before anything is written, so a bad
   * answer leaves the run waiting exactly as it was.
   */
  async resume(threadId: string, answer: unknown, options: DriveOptions = {}): Promise<RunOutcome> {
    const current = await this.status(threadId);
    if (current.pending.length === 0) {
      throw new InputError(
        `Thread ${threadId} is not waiting for approval (it is ${current.status}).`,
        "conflict",
      );
    }
    const parsed = ApprovalResume.safeParse(answer);
    if (!parsed.success) {
      throw new InputError(
        `The approval answer is not valid: ${parsed.error.issues.map((i) => i.message).join("; ")}.`,
        "invalid_argument",
      );
    }
    if ("action" in parsed.data && parsed.data.action === "edit") {
      checkEditedArgs(
        current.pending.flatMap((p) => p.request.actions),
        parsed.data.args ?? {},
      );
    }
    const resume =
      current.pending.length === 1
        ? parsed.data
        : Object.fromEntries(current.pending.map((p) => [p.interrupt_id, parsed.data]));
    return this.drive(new Command({ resume }), threadId, options);
  }

  /** Where a thread stands, read from its latest checkpoint. */
  async status(threadId: string): Promise<RunOutcome> {
    if (!(await this.exists(threadId))) {
      throw new NotFoundError(`No run has thread id ${threadId}. Check the id printed by keel run.`);
    }
    const snapshot = await this.graph.getState({ configurable: { thread_id: threadId } });
    const values = snapshot.values as { plan?: Plan; results?: AgentResult[]; final_answer?: string };
    const pending: PendingApproval[] = snapshot.tasks.flatMap((task) =>
      task.interrupts.flatMap((i) => {
        const request = ApprovalRequest.safeParse(i.value);
        return request.success && i.id ? [{ interrupt_id: i.id, request: request.data }] : [];
      }),
    );
    const results = values.results ?? [];
    const failed = results.some((r) => r.status === "failed") || snapshot.tasks.some((t) => t.error);
    return {
      thread_id: threadId,
      status: pending.length > 0 ? "waiting_for_approval" : failed ? "failed" : "done",
      plan: values.plan,
      results,
      final_answer: values.final_answer,
      pending,
    };
  }

  private async exists(threadId: string): Promise<boolean> {
    const tuple = await this.checkpointer.getTuple({ configurable: { thread_id: threadId } });
    return tuple !== undefined;
  }

  private async drive(input: unknown, threadId: string, options: DriveOptions): Promise<RunOutcome> {
    const stream = await this.graph.stream(input as never, {
      configurable: { thread_id: threadId },
      streamMode: "custom",
      subgraphs: true,
      signal: options.signal,
      recursionLimit: 200,
    });
    for await (const chunk of stream) {
      const [, payload] = chunk as unknown as [string[], unknown];
      const event = asProgressEvent(payload);
      if (event) options.onEvent?.(event);
    }
    return this.status(threadId);
  }
}
