import { randomUUID } from "node:crypto";
import { setMaxListeners } from "node:events";
import os from "node:os";
import { parseCronItems, run, type Runner as GraphileRunner, type Task } from "graphile-worker";
import type { Database } from "../checkpoints/database.js";
import type { KeelConfig } from "../core/config.js";
import { DeadlineError, SystemError, namedFailure, WorkerStoppingError } from "../core/errors.js";
import type { GraphDeps } from "../graphs/deps.js";
import type { ProgressEvent } from "../graphs/progress.js";
import { compensateRun } from "../graphs/compensation.js";
import { bestEffort } from "../observability/audit.js";
import { silentLogger, type Logger } from "../observability/log.js";
import { pruneTrajectories } from "../observability/trajectory.js";
import { purgeOlderThan } from "./purge.js";
import {
  contextFromTraceparent,
  currentTraceparent,
  errorClass,
  inSpan,
  KEEL,
  SpanKind,
} from "../observability/spans.js";
import { decisionsFor, expireApproval, hasPendingApprovals, traceApprovalWaits } from "./approvals.js";
import { applyEvent, CHILD_EVENTS } from "./task/children.js";
import { CANCEL_CHANNEL } from "./task/cancel.js";
import { applyRetention } from "./retention.js";
import { FencedSaver } from "./fence.js";
import { failOrRetry, settleError, settleOutcome, type Claim, type SettleContext } from "./task/settle.js";
import {
  DEFAULT_QUEUE,
  enqueue,
  JOB,
  runJob,
  prepareQueue,
  quietLogger,
  schedulePrune,
  scheduleWatch,
  type RunTaskPayload,
} from "./queue.js";
import { Runner, type RunOutcome } from "./runner.js";
import { analyzeRollout } from "./releases/analysis.js";
import { ReleaseRunners } from "./releases/runners.js";
import { targetsFor } from "../policy/slo-targets.js";
import { releaseLabel } from "./releases/store.js";
import type { GraphRegistry } from "./registry.js";
import { driveRun, GraphRunError } from "./runs/drive.js";
import { pruneRunEvents, RunEventWriter, serialise } from "./runs/events.js";
import { currentRun, earlierRunActive, type RunRow, type RunStatus } from "./runs/sql.js";
import { pruneExpiredThreads } from "./runs/store.js";
import { fireDueCrons } from "./runs/crons.js";
import { sendRunWebhook, webhookIfEnded } from "./runs/webhook.js";
import { failureOf } from "../core/errors.js";
import { FencedOutError } from "./task/rules.js";
import { inTransaction, transition } from "./task/store.js";
import { adoptTrace, fenceOut, lockTask, renewLease, takeLease } from "./task/sql.js";

/** Threads one retention batch looks at, and batches an hour. */
const RETENTION_BATCH = 200;
const RETENTION_BATCHES = 10;

export interface WorkerOptions {
  concurrency: number;
  /**
   * The queues whose tasks this worker drives (default: the default queue, as `keel worker`). Housekeeping jobs
   * (lease watches, approval expiry, compensation, trajectory pruning) are shared by every worker.
   */
  queues?: readonly string[];
  /**
   * Where a task this worker lets go of on shutdown is queued: its own queue by default; `keel run`, `batch` and
   * `eval` hand their tasks back to the default queue, since nobody will work their queue once they exit.
   */
  releaseTo?: string;
  workerId?: string;
  deps?: Partial<GraphDeps>;
  /** Progress of every task this worker drives (the in-process worker of `keel run` prints it). */
  onEvent?: (taskId: string, event: ProgressEvent) => void;
  /** Called after each drive settles a task (done, failed, waiting, retried). */
  onSettled?: (taskId: string) => void;
  /** Structured log of claims, settles and failures (silent unless given). */
  logger?: Logger;
  /**
   * The graphs of langgraph.json, for the Agent Server API's runs (`keel serve`, `keel worker --config`). A run of
   * a graph this worker does not have fails with a configuration error that names it.
   */
  graphs?: GraphRegistry;
  /**
   * Whether this worker takes part in firing the Agent Server API's crons (graphile-worker's minute tick): the
   * long-lived workers of `keel worker` and `keel serve` do; the short-lived ones of `keel run` and the like do not.
   */
  crons?: boolean;
}

/**
 * A worker process's share of the queue: graphile-worker hands it `run task X` jobs; for each, it claims the task
 * (lease + fencing token), drives the orchestrator from the task's checkpoint, and records where the task ended.
 * It holds nothing while a task waits for a person.
 */
export class TaskWorker {
  readonly id: string;
  private graphile?: GraphileRunner;
  private readonly active = new Map<string, AbortController>();
  /** One runner per release the tasks run on; a task with none runs on this process's own configuration. */
  private readonly releases: ReleaseRunners;

  private constructor(
    private readonly db: Database,
    private readonly config: KeelConfig,
    private readonly runner: Runner,
    private readonly saver: FencedSaver,
    private readonly options: WorkerOptions,
  ) {
    this.id = options.workerId ?? `${os.hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
    this.log = (options.logger ?? silentLogger).child({ worker: this.id });
    this.releases = new ReleaseRunners(db, config, runner, saver, options.deps, this.id);
  }
  /** The breakers of the outside dependencies this worker's runs have called, their states and releases. */
  breakers(): { name: string; state: string; release: string }[] {
    return this.releases.breakers();
  }

  readonly log: Logger;

  static async start(db: Database, config: KeelConfig, options: WorkerOptions): Promise<TaskWorker> {
    await prepareQueue(db.pool);
    let saver!: FencedSaver;
    const runner = await Runner.withSaver(
      db,
      config,
      (pool) => (saver = new FencedSaver(pool)),
      options.deps,
    );
    options.graphs?.attach({ checkpointer: saver });
    const worker = new TaskWorker(db, config, runner, saver, options);
    const runTask: Task = (payload) => worker.runTask(payload as RunTaskPayload);
    const taskList: Record<string, Task> = {
      ...Object.fromEntries((options.queues ?? [DEFAULT_QUEUE]).map((queue) => [runJob(queue), runTask])),
      [JOB.watchTask]: (payload) => worker.watchTask(payload as { task_id: string }),
      [JOB.expireApproval]: async (payload) => {
        await expireApproval(db.pool, (payload as { approval_id: string }).approval_id);
      },
      [JOB.compensate]: (payload) => worker.compensate((payload as { task_id: string }).task_id),
      [JOB.pruneTrajectories]: () => worker.prune(),
      // graphile-worker's scheduler fires it once a minute across all workers; it starts the crons due then.
      [JOB.runWebhook]: async (payload) => {
        const { run_id, status } = payload as { run_id: string; status: RunStatus };
        await sendRunWebhook(db.pool, run_id, status);
      },
      [JOB.analyzeRollout]: () => worker.analyzeRollout(),
      [JOB.cronTick]: async (payload) => {
        const at = (payload as { _cron?: { ts?: string } })._cron?.ts;
        const { fired, failed } = await fireDueCrons(db.pool, config, at ? new Date(at) : new Date(), (id) =>
          worker.releasable(id),
        );
        if (fired.length || failed.length) worker.log.info({ fired, failed }, "crons fired");
      },
    };
    await worker.listenForCancels();
    await schedulePrune(db.pool, new Date());
    worker.graphile = await run({
      pgPool: db.pool,
      concurrency: options.concurrency,
      taskList,
      noHandleSignals: true,
      pollInterval: 500,
      logger: quietLogger,
      parsedCronItems: options.crons
        ? parseCronItems([
            {
              task: JOB.cronTick,
              match: "* * * * *",
              identifier: JOB.cronTick,
              options: { backfillPeriod: 0 },
            },
            // Once a minute across all workers: judge the step of the rollout in progress, if any.
            {
              task: JOB.analyzeRollout,
              match: "* * * * *",
              identifier: JOB.analyzeRollout,
              options: { backfillPeriod: 0 },
            },
          ])
        : [],
    });
    return worker;
  }

  /** Stops taking work; running tasks are released (their leases cleared, their jobs re-queued) and it returns. */
  async stop(): Promise<void> {
    if (this.stopping) return this.stopping;
    this.stopping = this.shutDown();
    return this.stopping;
  }

  private stopping?: Promise<void>;

  private async shutDown(): Promise<void> {
    for (const controller of this.active.values()) controller.abort(new WorkerStoppingError());
    await this.graphile?.stop();
    // stop() returns once jobs are released; the promise settles when the pool is no longer used at all.
    await this.graphile?.promise.catch(() => undefined);
    if (this.listener) {
      // The connection goes back to the pool: it must stop listening and drop this worker's handler first.
      const listener = this.listener;
      this.listener = undefined;
      listener.removeAllListeners("notification");
      await listener.query(`unlisten ${CANCEL_CHANNEL}`).then(
        () => listener.release(),
        (error: Error) => listener.release(error),
      );
    }
  }

  private listener?: import("pg").PoolClient;

  /** A cancel anywhere aborts this worker's run of that task at once, rather than at its next heartbeat. */
  private async listenForCancels(): Promise<void> {
    this.listener = await this.db.pool.connect();
    this.listener.on("notification", (message) => {
      if (message.channel === CANCEL_CHANNEL && message.payload) {
        this.active.get(message.payload)?.abort(new FencedOutError(message.payload));
      }
    });
    await this.listener.query(`listen ${CANCEL_CHANNEL}`);
  }

  /** Resolves when graphile-worker stops (after stop(), or on a fatal error). */
  get done(): Promise<void> {
    return this.graphile?.promise ?? Promise.resolve();
  }

  private async claim(taskId: string, kind: RunTaskPayload["kind"]): Promise<Claim | undefined> {
    const lease = this.config.runtime.leaseSeconds;
    // Recorded before the claim's transaction: a task submitted to no release runs on this process's own.
    const own = await this.releases.ownRelease();
    return inTransaction(this.db.pool, async (client) => {
      const task = await lockTask(client, taskId);
      if (!task || task.cancel_requested) return undefined;
      const resumable = task.status === "waiting_for_approval" && kind === "resume";
      if (task.status !== "queued" && !resumable) return undefined;
      if (resumable && (await hasPendingApprovals(client, taskId))) return undefined; // not all decided yet
      const run = await currentRun(client, taskId);
      if (run && !resumable && (await earlierRunActive(client, run))) {
        // An enqueued run waits for the runs before it on its thread: look again in a second.
        await enqueue(client, task, kind, new Date(Date.now() + 1000));
        return undefined;
      }
      const moved = await transition(client, taskId, "running", {
        reason: resumable ? "approved: resuming" : kind === "retry" ? "retrying" : "claimed",
        worker: this.id,
        patch: resumable ? {} : { attempts: task.attempts + 1 },
      });
      // A task submitted to no release runs on the configuration of whichever worker claims it, and says so.
      if (
        !moved.release_pinned &&
        moved.release_id !== own.id &&
        (!run || (await this.releasable(run.graph_id)))
      ) {
        await client.query("update tasks set release_id = $2 where id = $1", [taskId, own.id]);
        moved.release_id = own.id;
      }
      const held = await takeLease(client, taskId, this.id, lease, !resumable);
      await scheduleWatch(client, taskId, held.lease_expires_at);
      return { task: moved, token: held.fencing_token, run };
    });
  }

  /** Whether runs of a graph run on a release (it is Keel's orchestrator). */
  private async releasable(graphId: string): Promise<boolean> {
    return (await this.options.graphs?.runsOnRelease(graphId)) ?? false;
  }

  private async heartbeat(claim: Claim): Promise<boolean> {
    return renewLease(this.db.pool, {
      id: claim.task.id,
      token: claim.token,
      worker: this.id,
      seconds: this.config.runtime.leaseSeconds,
    });
  }

  /**
   * Looks at a task nobody may be looking after: a running task whose holder stopped renewing its lease is fenced
   * out and retried from its checkpoint; a queued (or fully decided, waiting) task whose job a dead worker took
   * gets a new job. Anything else needs no watching.
   */
  private async watchTask({ task_id }: { task_id: string }): Promise<void> {
    const lease = this.config.runtime.leaseSeconds;
    await inTransaction(this.db.pool, async (client) => {
      const task = await lockTask(client, task_id);
      if (!task || task.cancel_requested) return;
      const later = (at: Date) => scheduleWatch(client, task_id, at);
      if (task.status === "running") {
        if (task.lease_expires_at && task.lease_expires_at.getTime() > Date.now())
          return later(task.lease_expires_at);
        // The holder stopped renewing: fence it out, then retry from the checkpoint if attempts remain. The
        // retry goes to the default queue: the process that held it (maybe the only one on its queue) is gone.
        await fenceOut(client, task_id);
        await failOrRetry(
          this.settleContext,
          client,
          task,
          namedFailure("lease_expired", `Worker ${task.lease_owner ?? "?"} stopped renewing its lease.`),
          undefined,
          { queue: DEFAULT_QUEUE },
        );
        return;
      }
      const waitingOnPeople =
        task.status === "waiting_for_approval" && (await hasPendingApprovals(client, task_id));
      if ((task.status === "queued" || task.status === "waiting_for_approval") && !waitingOnPeople) {
        // A job a dead worker took is stuck until graphile-worker's own (long) lock timeout: add it again. A job
        // nobody took yet keeps its place in line (preserve_run_at); one a live worker just took is claimed by
        // whichever run comes first, and the other finds nothing to do.
        await enqueue(client, task, task.status === "queued" ? "retry" : "resume", null, "preserve_run_at");
        await later(new Date(Date.now() + lease * 1000));
      }
    });
  }

  private async runTask({ task_id, kind }: RunTaskPayload): Promise<void> {
    const claim = await this.claim(task_id, kind);
    if (!claim) return;
    // One trace per task, whichever process submitted it and however many workers drive it.
    await inSpan(
      "invoke_agent orchestrator",
      {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "orchestrator",
        [KEEL.agent]: "orchestrator",
        [KEEL.taskId]: task_id,
        [KEEL.rootTaskId]: claim.task.root_id,
        [KEEL.attempt]: claim.task.attempts,
        [KEEL.worker]: this.id,
        "keel.run.kind": kind,
      },
      async (span) => {
        if (claim.task.release_id) {
          span.setAttribute(KEEL.release, releaseLabel(await this.releases.release(claim.task.release_id)));
        }
        if (!claim.task.trace_context) {
          const traceparent = currentTraceparent();
          if (traceparent) await adoptTrace(this.db.pool, task_id, traceparent);
        }
        this.log.info({ task_id, attempt: claim.task.attempts, kind }, "task claimed");
        const status = await this.driveAndSettle(claim);
        span.setAttribute("keel.task.status", status);
        this.log.info({ task_id, attempt: claim.task.attempts, status }, "task settled");
      },
      { parent: contextFromTraceparent(claim.task.trace_context), kind: SpanKind.CONSUMER },
    );
  }

  /** Drives a claimed task under its lease and heartbeat, and records where it ended. */
  private async driveAndSettle(claim: Claim): Promise<string> {
    const task_id = claim.task.id;
    const controller = new AbortController();
    // Every model and tool call of the run listens to this signal (parallel agents, retries): not a leak.
    setMaxListeners(200, controller.signal);
    this.active.set(task_id, controller);
    // The checkpoints are the thread's: the task's own for a request, the run's thread for an API run.
    const thread = claim.run?.thread_id ?? task_id;
    this.saver.tokens.set(thread, { taskId: task_id, token: claim.token });
    const beat = setInterval(
      () => {
        this.heartbeat(claim).then(
          (held) => held || controller.abort(new FencedOutError(task_id)),
          () => undefined, // a missed beat is retried at the next tick; the lease covers several
        );
      },
      (this.config.runtime.leaseSeconds * 1000) / 3,
    );
    const remaining = claim.task.deadline_at ? claim.task.deadline_at.getTime() - Date.now() : Infinity;
    const deadline = setTimeout(
      () => controller.abort(new DeadlineError()),
      Math.max(0, Math.min(remaining, 2 ** 31 - 1)),
    );
    let events = Promise.resolve();
    const onEvent = (event: ProgressEvent) => {
      this.options.onEvent?.(task_id, event);
      if (!CHILD_EVENTS.has(event.type)) return;
      // Live child updates are best effort: settle() reconciles every child from the results at the end.
      // A failure is logged with the task and the event; it does not stop the run.
      events = events.then(() =>
        bestEffort({ what: `child event ${event.type}`, task_id }, () => this.recordEvent(claim, event)).then(
          () => undefined,
        ),
      );
    };
    const writer = claim.run
      ? await RunEventWriter.open(this.db.pool, claim.run.run_id, { taskId: task_id, token: claim.token })
      : undefined;
    try {
      if (claim.run && writer) {
        const { outcome, before } = await this.driveApiRun(
          claim,
          claim.run,
          writer,
          controller.signal,
          onEvent,
        );
        await events;
        await settleOutcome(this.settleContext, claim, outcome, before);
        return outcome.status;
      }
      const outcome = await this.drive(claim, {
        onEvent,
        signal: controller.signal,
        fenceToken: claim.token,
        attempt: claim.task.attempts,
        simulate: claim.task.shadow_of !== null,
      });
      await events;
      await settleOutcome(this.settleContext, claim, outcome);
      return outcome.status;
    } catch (error) {
      await events;
      if (writer) await this.publishFailure(claim, writer, error, controller.signal);
      this.log.warn(
        {
          task_id,
          attempt: claim.task.attempts,
          error_class: errorClass(error),
          error: (error as Error).message,
        },
        "task run failed",
      );
      await settleError(this.settleContext, claim, error, controller.signal, {
        releaseTo: this.options.releaseTo,
      });
      return "error";
    } finally {
      clearInterval(beat);
      clearTimeout(deadline);
      this.active.delete(task_id);
      this.saver.tokens.delete(thread);
      if (claim.run?.kwargs.webhook)
        await bestEffort({ what: "run webhook", task_id }, () =>
          webhookIfEnded(this.db.pool, claim.run!.run_id),
        );
      this.options.onSettled?.(task_id);
    }
  }

  /**
   * Drives the thread from wherever its checkpoint stands: a fresh start, an interrupt whose approvals are all
   * decided (the decisions resume it, whether this job is a resume or a retry after a crash), or a step in the
   * middle (continued; nothing completed runs again).
   */
  private async drive(
    claim: Claim,
    options: {
      onEvent: (e: ProgressEvent) => void;
      signal: AbortSignal;
      fenceToken: string;
      attempt: number;
      simulate: boolean;
    },
  ): Promise<RunOutcome> {
    const id = claim.task.id;
    const { runner } = await this.releases.runnerFor(
      claim.task.release_id ?? (await this.releases.ownRelease()).id,
    );
    if (!(await runner.hasCheckpoint(id))) return runner.begin(claim.task.request ?? "", id, options);
    const state = await runner.status(id);
    if (state.pending.length === 0) return runner.continue(id, options);
    const decisions = await decisionsFor(
      this.db.pool,
      id,
      state.pending.map((p) => p.interrupt_id),
    );
    const ids = Object.keys(decisions);
    if (ids.length < state.pending.length) return state; // still waiting for someone: settle back to waiting
    await traceApprovalWaits(this.db.pool, id, ids);
    const value = state.pending.length === 1 ? decisions[ids[0]!] : decisions;
    return runner.resumeWith(id, value, options);
  }

  /**
   * Drives a run of the Agent Server API. A resume of Keel approvals continues with the recorded decisions (the
   * run that adopted the task asked for them); otherwise the run's own input or command.
   */
  private async driveApiRun(
    claim: Claim,
    run: RunRow,
    writer: RunEventWriter,
    signal: AbortSignal,
    onEvent: (event: ProgressEvent) => void,
  ) {
    const graphs = this.options.graphs;
    if (!graphs?.has(run.graph_id))
      throw new SystemError(
        "configuration_error",
        `This worker does not serve graph "${run.graph_id}" (run ${run.run_id}); start keel worker with --config naming the langgraph.json that lists it.`,
      );
    const decisions = async (interruptIds: string[]) => {
      const found = await decisionsFor(this.db.pool, claim.task.id, interruptIds);
      const ids = Object.keys(found);
      if (ids.length < interruptIds.length) return undefined; // still waiting for someone
      await traceApprovalWaits(this.db.pool, claim.task.id, ids);
      return ids.length === 1 ? found[ids[0]!] : found;
    };
    // Keel's orchestrator runs on the run's release (that of this process's configuration when it names none),
    // and its progress keeps the request's AgentTask rows in step, as for a task submitted to the runtime.
    const orchestrator = await this.releasable(run.graph_id);
    const graph = orchestrator
      ? (await this.releases.runnerFor(claim.task.release_id ?? (await this.releases.ownRelease()).id)).runner
          .orchestrator
      : await graphs.get(run.graph_id, { configurable: run.kwargs.config?.configurable ?? {} });
    const result = await driveRun(this.db.pool, graph, run, {
      signal,
      fence: { taskId: claim.task.id, token: claim.token },
      attempt: claim.task.attempts,
      events: writer,
      decisions,
      onProgress: orchestrator ? onEvent : undefined,
    });
    const before = async (client: import("pg").PoolClient) => {
      await client.query(
        `update threads set "values" = $2::jsonb, interrupts = $3::jsonb, pending_nodes = $5, updated_at = now(),
            expires_at = case when $4 then now() + interval '10 minutes' else expires_at end
          where thread_id = $1`,
        [
          run.thread_id,
          serialise(result.values ?? null),
          serialise(result.interrupts),
          run.kwargs.temporary,
          result.next,
        ],
      );
    };
    return { outcome: result.outcome, before };
  }

  /** A run that ends failed says why in its stream (a failure that will be retried does not end the stream). */
  private async publishFailure(claim: Claim, writer: RunEventWriter, error: unknown, signal: AbortSignal) {
    const cause: unknown = signal.aborted ? signal.reason : error;
    if (cause instanceof FencedOutError || cause instanceof WorkerStoppingError) return;
    const failure = failureOf(cause);
    if (failure.retryable && claim.task.attempts < claim.task.max_attempts) return;
    // Named as LangGraph's servers name it: the error's own name (a graph's error keeps the name it raised).
    const name =
      cause instanceof GraphRunError ? cause.errorName : cause instanceof Error ? cause.name : failure.reason;
    writer.publish("error", { error: name, message: failure.message });
    await writer.flush().catch(() => undefined);
  }

  /** The saga's undo for a tree that ended failed or cancelled; failures are recorded in the ledger and logged. */
  private async compensate(taskId: string): Promise<void> {
    const reports = await compensateRun(this.db.pool, taskId, this.runner.deps);
    for (const r of reports.filter((x) => x.state === "compensation_failed")) {
      this.log.error({ task_id: taskId, tool: r.tool, error: r.error ?? "?" }, "compensation failed");
      console.error(`keel worker: compensation of ${r.tool} for task ${taskId} failed: ${r.error ?? "?"}`);
    }
  }

  /**
   * Housekeeping: drops trajectory steps past their retention period, applies the policy's checkpoint retention
   * to finished threads and, with KEEL_PURGE_AFTER_DAYS set, purges finished requests past theirs (bounded batches
   * each time); then looks again in an hour.
   */
  private async prune(): Promise<void> {
    const removed = await pruneTrajectories(this.db.pool, this.config.observability.retentionDays);
    if (removed)
      this.log.info({ removed, days: this.config.observability.retentionDays }, "trajectory pruned");
    const events = await pruneRunEvents(this.db.pool, this.config.runtime.runEventsRetentionHours);
    if (events) this.log.info({ events }, "ended runs' stream events removed");
    const threads = await pruneExpiredThreads(this.db.pool);
    if (threads) this.log.info({ threads }, "stateless runs' threads removed");
    const days = this.config.runtime.purgeAfterDays;
    if (days) {
      const { purged, skipped } = await purgeOlderThan(this.db.pool, days);
      if (purged.length || skipped.length)
        this.log.info({ purged: purged.length, skipped: skipped.length, days }, "finished requests purged");
    }
    // Checkpoint retention, in bounded batches: at most RETENTION_BATCHES of RETENTION_BATCH threads an hour, so a
    // backlog (a policy just tightened) is worked off over a few hours instead of in one long burst.
    for (let batch = 0; batch < RETENTION_BATCHES; batch++) {
      const report = await applyRetention(this.db.pool, this.runner.deps.policy.retention, {
        limit: RETENTION_BATCH,
      });
      if (report.pruned.length || report.skipped)
        this.log.info(
          { ...report.threads, skipped: report.skipped, ...report.removed },
          "checkpoint retention applied",
        );
      if (report.pruned.length + report.skipped < RETENTION_BATCH) break;
    }
    await schedulePrune(this.db.pool, new Date(Date.now() + 3600_000));
  }

  /** Judges the rollout in progress (the minute's cron): promote, wait, or roll back, each logged. */
  private async analyzeRollout(): Promise<void> {
    const targets = targetsFor(this.runner.deps.policy.slo, undefined);
    const verdict = await analyzeRollout(this.db.pool, targets);
    if (verdict.outcome === "no_rollout") return;
    const entry = {
      rollout_id: verdict.rollout_id,
      step: verdict.step + 1,
      outcome: verdict.outcome,
      notification: verdict.notification,
    };
    if (verdict.outcome === "rolled_back" || verdict.outcome === "failed")
      this.log.warn(entry, verdict.reason);
    else this.log.info(entry, verdict.reason);
  }

  private get settleContext(): SettleContext {
    return { db: this.db, config: this.config, workerId: this.id };
  }

  private async recordEvent(claim: Claim, event: ProgressEvent): Promise<void> {
    await inTransaction(this.db.pool, (client) => applyEvent(client, claim.task, event, this.id));
  }
}
