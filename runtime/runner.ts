import { AsyncLocalStorageProviderSingleton } from "@langchain/core/singletons";
import { Command } from "@langchain/langgraph";
import type { BaseCheckpointSaver } from "@langchain/langgraph-checkpoint";
import type { AgentResult, Plan } from "../agents/contracts.js";
import { openDatabase, type Database } from "../checkpoints/database.js";
import { KeelSaver } from "../checkpoints/keel-saver.js";
import type { KeelConfig } from "../core/config.js";
import { NotFoundError, SystemError } from "../core/errors.js";
import { ApprovalRequest } from "../graphs/approval.js";
import { defaultDeps, type GraphDeps } from "../graphs/deps.js";
import { buildOrchestratorGraph } from "../graphs/build-orchestrator.js";
import { asProgressEvent, type ProgressEvent } from "../graphs/progress.js";
import { keelConfigurable } from "../graphs/run-context.js";
import type { ServedGraph } from "./registry.js";
import { observability } from "../observability/index.js";
import { langsmithRunConfig } from "../observability/langsmith.js";
import { FencedSaver } from "./fence.js";

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
  /** The worker's fencing token: effects in Keel's database commit only while it still holds the task. */
  fenceToken?: string;
  /** Which attempt of the task this drive is, for traces and the trajectory store. */
  attempt?: number;
  /** A shadow run: side-effecting calls are simulated, nobody is asked. */
  simulate?: boolean;
}

/**
 * Runs the orchestrator with Keel's checkpointer: start a thread, resume it with a decision, read where it stands.
 * Every call continues from the checkpoint, so a run interrupted in one process is resumed by another.
 */
export class Runner {
  private constructor(
    readonly db: Database,
    readonly checkpointer: BaseCheckpointSaver,
    /** What the graph was built with; the worker's compensations share its limits and breakers. */
    readonly deps: GraphDeps,
    private readonly graph: ReturnType<ReturnType<typeof buildOrchestratorGraph>["compile"]>,
    private readonly ownsDb: boolean,
  ) {}

  /** Opens the database (embedded unless DATABASE_URL), sets up checkpoints, compiles the graph. */
  static async open(config: KeelConfig, deps?: Partial<GraphDeps>, db?: Database): Promise<Runner> {
    return Runner.withSaver(
      db ?? (await openDatabase(config)),
      config,
      (pool) => new KeelSaver(pool),
      deps,
      db === undefined,
    );
  }

  /** A runner on an open database with a checkpointer of the caller's making (the worker's is fenced). */
  static async withSaver(
    db: Database,
    config: KeelConfig,
    make: (pool: Database["pool"]) => BaseCheckpointSaver,
    deps?: Partial<GraphDeps>,
    ownsDb = false,
  ): Promise<Runner> {
    try {
      const checkpointer = make(db.pool);
      // Spreading the defaults reads the policy file now, so a bad file stops a worker at start.
      const built: GraphDeps = { ...defaultDeps(config), db: () => Promise.resolve(db.pool), ...deps };
      const graph = buildOrchestratorGraph(built).compile({ checkpointer, name: "orchestrator" });
      return new Runner(db, checkpointer, built, graph, ownsDb);
    } catch (error) {
      if (ownsDb) await db.close();
      throw error;
    }
  }

  /** The compiled orchestrator, on this runner's checkpointer and dependencies: what an API run of it drives. */
  get orchestrator(): ServedGraph {
    // A compiled graph of known state is a graph of any state; only its stream transformers' type says otherwise.
    return this.graph as unknown as ServedGraph;
  }

  async close(): Promise<void> {
    if (this.ownsDb) await this.db.close();
  }

  /** Continues a thread from its last checkpoint (after a crash or a retry): nothing completed runs again. */
  continue(threadId: string, options: DriveOptions = {}): Promise<RunOutcome> {
    return this.drive(null, threadId, options);
  }

  /** Resumes pending interrupts with an already-validated value (one decision, or a map by interrupt id). */
  resumeWith(threadId: string, resume: unknown, options: DriveOptions = {}): Promise<RunOutcome> {
    return this.drive(new Command({ resume }), threadId, options);
  }

  /** Starts a thread whose request was checked and stored by the caller. */
  begin(request: string, threadId: string, options: DriveOptions = {}): Promise<RunOutcome> {
    return this.drive({ request }, threadId, options);
  }

  async hasCheckpoint(threadId: string): Promise<boolean> {
    return this.exists(threadId);
  }

  /** Where a thread stands, read from its latest checkpoint. */
  async status(threadId: string): Promise<RunOutcome> {
    if (!(await this.exists(threadId))) {
      throw new NotFoundError(`No run has thread id ${threadId}. Check the id printed by keel run.`);
    }
    return this.outcome(threadId);
  }

  /** The outcome recorded in a thread's latest checkpoint, which the caller knows exists. */
  private async outcome(threadId: string): Promise<RunOutcome> {
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

  /**
   * Drives the graph outside any graph run's context. LangChain keeps the running task's config in
   * AsyncLocalStorage, and a job can start inside callbacks whose context a node's run created (a pooled
   * connection's socket, say); a graph invoked there takes itself for that node's subgraph and, instead of
   * stopping at an interrupt, throws it to a parent that does not exist. Clearing the store keeps every drive a
   * root run.
   */
  private drive(input: unknown, threadId: string, options: DriveOptions): Promise<RunOutcome> {
    return AsyncLocalStorageProviderSingleton.getInstance().run(undefined, () =>
      this.driveRoot(input, threadId, options),
    );
  }

  private async driveRoot(input: unknown, threadId: string, options: DriveOptions): Promise<RunOutcome> {
    const { langsmith } = observability();
    const stream = await this.graph.stream(input as never, {
      configurable: {
        thread_id: threadId,
        // A worker's runner is fenced: its nodes refuse to run (and so to commit effects) without the token.
        ...keelConfigurable({
          ...(this.checkpointer instanceof FencedSaver ? { keel_fenced: true } : {}),
          ...(options.fenceToken ? { keel_fence_token: options.fenceToken } : {}),
          ...(options.attempt ? { keel_attempt: options.attempt } : {}),
          ...(options.simulate ? { keel_simulate: true } : {}),
        }),
      },
      // LangSmith (opt-in) through LangChain's own tracer, one run per drive, grouped by the task.
      ...(langsmith.enabled
        ? { callbacks: langsmith.callbacks, ...langsmithRunConfig(threadId, options.attempt) }
        : {}),
      streamMode: "custom",
      subgraphs: true,
      signal: options.signal,
      recursionLimit: 200,
      // Each step is persisted before the next one runs: a worker that dies or is fenced out loses nothing
      // checkpointed, and a refused (fenced) write stops the run instead of being dropped.
      durability: "sync",
    });
    for await (const chunk of stream) {
      const [, payload] = chunk as unknown as [string[], unknown];
      const event = asProgressEvent(payload);
      if (event) options.onEvent?.(event);
    }
    // A finished run always has a checkpoint; if it cannot be read, that is Keel's problem (retryable), not a
    // missing id the caller gave.
    if (!(await this.exists(threadId))) {
      throw new SystemError(
        "database_error",
        `The run of thread ${threadId} finished, but its checkpoint could not be read back.`,
      );
    }
    return this.outcome(threadId);
  }
}
