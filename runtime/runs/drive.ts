import { AsyncLocalStorageProviderSingleton } from "@langchain/core/singletons";
import { Command, Send } from "@langchain/langgraph";
import type pg from "pg";
import type { AgentResult, Plan } from "../../agents/contracts.js";
import { isKeelError, KeelError } from "../../core/errors.js";
import { ApprovalRequest } from "../../graphs/approval.js";
import { asProgressEvent, type ProgressEvent } from "../../graphs/progress.js";
import { keelConfigurable } from "../../graphs/run-context.js";
import type { ServedGraph } from "../registry.js";
import type { PendingApproval, RunOutcome } from "../runner.js";
import type { RunEventWriter } from "./events.js";
import type { RunCommand, RunRow, StreamMode } from "./sql.js";

/**
 * Drives one run of the Agent Server API: any graph of langgraph.json, on its thread's checkpoints, with the
 * stream modes the client asked for, every chunk appended to the run's events. What the worker does around it
 * (claim, lease, heartbeat, fencing, settle, retries) is the same as for any Keel task.
 */

export interface RunDriveOptions {
  signal: AbortSignal;
  fence: { taskId: string; token: string };
  attempt: number;
  events: RunEventWriter;
  /**
   * The recorded decisions on Keel approvals the thread waits for, as the resume value (one decision, or a map
   * by interrupt id); undefined while someone has yet to decide.
   */
  decisions: (interruptIds: string[]) => Promise<unknown>;
  /** Keel's progress events (plan, agents starting and ending), from the graph's custom stream, whatever it shows. */
  onProgress?: (event: ProgressEvent) => void;
}

/** Where a run leaves its thread: the state to show on the thread, and the outcome the task settles with. */
export interface RunDriveResult {
  outcome: RunOutcome;
  values: unknown;
  /** Pending interrupts by task id, as the thread shows them. */
  interrupts: Record<string, unknown[]>;
  /** The nodes the state would run next (none when the run finished). */
  next: string[];
}

const LIB_MODE: Record<Exclude<StreamMode, "events">, string> = {
  values: "values",
  updates: "updates",
  // Whole messages as they grow are built from LangGraph's message chunks (and the values, for complete ones).
  messages: "messages",
  "messages-tuple": "messages",
  custom: "custom",
  debug: "debug",
  tasks: "tasks",
  checkpoints: "checkpoints",
};

/**
 * An error a graph's own code raised (a node threw, the recursion limit was reached): the run fails with it, named
 * as it named itself, and is not retried — a user's nodes may not be safe to run twice, and the same input fails
 * the same way. Keel's own errors, the database's and the network's keep their meaning (and their retries).
 */
export class GraphRunError extends KeelError {
  constructor(
    readonly errorName: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super("internal", "user", message, { ...options, retryable: false });
  }
}

function asRunFailure(error: unknown): unknown {
  if (isKeelError(error) || !(error instanceof Error)) return error;
  const code = (error as { code?: unknown }).code;
  // A SQLSTATE (database) or a system error code (ECONNRESET…): the environment, which another try may fix.
  if (typeof code === "string" && (/^[0-9A-Z]{5}$/.test(code) || code.startsWith("E"))) return error;
  if (error.name === "AbortError") return error;
  return new GraphRunError(error.name, error.message, { cause: error });
}

/** LangGraph's Command from the API's form (`goto` as names or `{node, input}` sends). */
export function commandOf(command: RunCommand): Command {
  const goto =
    command.goto === undefined ? undefined : Array.isArray(command.goto) ? command.goto : [command.goto];
  return new Command({
    resume: command.resume,
    update: command.update,
    goto: goto?.map((g) => (typeof g === "string" ? g : new Send(g.node, g.input))),
  });
}

type Chunk = { id?: string; concat?: (other: Chunk) => Chunk };

/**
 * The `messages` stream mode of LangGraph's servers: `messages/metadata` when a message starts, `messages/partial`
 * with the whole message so far at each chunk, `messages/complete` once a message is in the state.
 */
class MessageStream {
  private readonly partial = new Map<string, Chunk>();
  private readonly complete = new Set<string>();

  take(mode: string, payload: unknown): [string, unknown][] {
    if (mode === "messages") {
      const [chunk, metadata] = payload as [Chunk, unknown];
      if (!chunk?.id) return [];
      const out: [string, unknown][] = [];
      const sofar = this.partial.get(chunk.id);
      if (!sofar) out.push(["messages/metadata", { [chunk.id]: { metadata } }]);
      const whole = sofar?.concat ? sofar.concat(chunk) : chunk;
      this.partial.set(chunk.id, whole);
      out.push(["messages/partial", [whole]]);
      return out;
    }
    const list = (payload as { messages?: unknown } | null)?.messages;
    const fresh = (Array.isArray(list) ? (list as Chunk[]) : []).filter(
      (m) => m?.id && !this.complete.has(m.id),
    );
    for (const m of fresh) this.complete.add(m.id!);
    return fresh.length ? [["messages/complete", fresh]] : [];
  }
}

/** Drops LangGraph's internal keys (`__pregel_…`) from a config shown in a stream. */
function cleanConfig(config: unknown): unknown {
  const c = config as { configurable?: Record<string, unknown> } | undefined;
  if (!c?.configurable) return config;
  return {
    ...c,
    callbacks: undefined,
    configurable: Object.fromEntries(Object.entries(c.configurable).filter(([k]) => !k.startsWith("__"))),
  };
}

/** Where a checkpoint is, as the Agent Server API names one (`thread_id`, `checkpoint_ns`, `checkpoint_id`, `checkpoint_map`). */
export function checkpointOf(config: unknown) {
  const c = (config as { configurable?: Record<string, unknown> } | undefined)?.configurable;
  if (!c?.thread_id || !c.checkpoint_id) return null;
  return {
    thread_id: c.thread_id as string,
    checkpoint_id: c.checkpoint_id as string,
    checkpoint_ns: typeof c.checkpoint_ns === "string" ? c.checkpoint_ns : "",
    checkpoint_map: (c.checkpoint_map as Record<string, unknown> | undefined) ?? null,
  };
}

/** A checkpoint as a stream shows it: where it is and where its parent is, configs without LangGraph's internals. */
function checkpointPayload(payload: Record<string, unknown>) {
  const { config, parentConfig, ...rest } = payload;
  return {
    ...rest,
    config: cleanConfig(config),
    parent_config: cleanConfig(parentConfig),
    checkpoint: checkpointOf(config),
    parent_checkpoint: checkpointOf(parentConfig),
  };
}

function cleanChunk(mode: string, chunk: unknown): unknown {
  if (mode === "checkpoints" && chunk && typeof chunk === "object")
    return checkpointPayload(chunk as Record<string, unknown>);
  if (mode === "debug" && chunk && typeof chunk === "object") {
    const debug = chunk as { type?: string; payload?: Record<string, unknown> };
    if (debug.type === "checkpoint" && debug.payload)
      return { ...debug, payload: checkpointPayload(debug.payload) };
  }
  return chunk;
}

/** The configuration a run's graph gets: the caller's (without Keel's own keys), the thread, and the fence. */
function runConfig(run: RunRow, options: RunDriveOptions): { configurable: Record<string, unknown> } {
  const given = run.kwargs.config?.configurable ?? {};
  // A caller cannot set Keel's own keys (a fencing token, say): they are the runtime's.
  const theirs = Object.fromEntries(Object.entries(given).filter(([k]) => !k.startsWith("keel_")));
  return {
    configurable: {
      ...theirs,
      thread_id: run.thread_id,
      run_id: run.run_id,
      graph_id: run.graph_id,
      assistant_id: run.assistant_id,
      ...keelConfigurable({
        keel_fenced: true,
        keel_fence_token: options.fence.token,
        keel_task_id: options.fence.taskId,
        keel_attempt: options.attempt,
      }),
    },
  };
}

/**
 * The graph's input for this attempt: the run's input or command the first time; nothing (continue from the
 * checkpoint) once the thread has moved past where the run began; the recorded decisions for an adopted resume.
 */
async function inputFor(
  pool: pg.Pool,
  graph: ServedGraph,
  run: RunRow,
  options: RunDriveOptions,
): Promise<unknown> {
  const state = await graph.getState({ configurable: { thread_id: run.thread_id } });
  const waiting = run.kwargs.config?.configurable?.checkpoint_id ? [] : keelApprovals(state);
  if (waiting.length > 0) {
    const decisions = await options.decisions(waiting.map((p) => p.interrupt_id));
    return decisions === undefined ? WAIT : new Command({ resume: decisions });
  }
  const head = (state.config.configurable?.checkpoint_id as string | undefined) ?? null;
  if (!run.started) {
    await pool.query("update runs set started = true, base_checkpoint = $2 where run_id = $1", [
      run.run_id,
      head,
    ]);
  } else if (head !== run.base_checkpoint) {
    return null; // an earlier attempt got past the input: continue from the checkpoint
  }
  return run.kwargs.command ? commandOf(run.kwargs.command) : (run.kwargs.input ?? null);
}

/** Drives `run` on `graph`: the run's graph of langgraph.json, or for Keel's orchestrator, its release's build. */
export async function driveRun(
  pool: pg.Pool,
  graph: ServedGraph,
  run: RunRow,
  options: RunDriveOptions,
): Promise<RunDriveResult> {
  const { kwargs } = run;
  const modes = new Set(kwargs.stream_mode.flatMap((m) => (m === "events" ? [] : [LIB_MODE[m]])));
  if (kwargs.stream_mode.includes("messages")) modes.add("values");
  if (options.onProgress) modes.add("custom");
  const asked = new Set<string>(kwargs.stream_mode);
  const messages = new MessageStream();
  const config = runConfig(run, options);
  options.events.publish("metadata", { run_id: run.run_id, attempt: options.attempt });
  const input = await inputFor(pool, graph, run, options);
  if (input === WAIT) return resultOf(graph, run);
  if (input === null) {
    // Continuing from the thread's head: a checkpoint the run was asked to start from is behind it now.
    for (const key of ["checkpoint_id", "checkpoint_ns", "checkpoint_map"]) delete config.configurable[key];
  }
  // As every Keel drive: a root run, whatever async context the job started in (see Runner.drive).
  await AsyncLocalStorageProviderSingleton.getInstance()
    .run(undefined, async () => {
      const stream = chunksOf(graph, input, asked.has("events") ? options.events : undefined, {
        ...config,
        context: kwargs.context as Record<string, unknown> | undefined,
        tags: kwargs.config?.tags,
        metadata: { ...run.metadata, run_id: run.run_id, thread_id: run.thread_id, graph_id: run.graph_id },
        recursionLimit: kwargs.config?.recursion_limit ?? 200,
        interruptBefore: kwargs.interrupt_before as never,
        interruptAfter: kwargs.interrupt_after as never,
        streamMode: [...modes] as never,
        subgraphs: true,
        signal: options.signal,
        durability: "sync",
      });
      for await (const chunk of stream) {
        const [ns, mode, payload] = chunk;
        if (mode === "custom") {
          const progress = asProgressEvent(payload);
          if (progress) options.onProgress?.(progress);
          if (!asked.has("custom")) continue;
        }
        if (ns.length > 0 && !kwargs.subgraphs) continue;
        const suffix = ns.length > 0 ? `|${ns.join("|")}` : "";
        const shown =
          (mode !== "messages" || asked.has("messages-tuple")) && (mode !== "values" || asked.has("values"));
        if (shown) options.events.publish(mode + suffix, cleanChunk(mode, payload));
        // Whole messages follow the chunk they come from, as LangGraph's servers order them.
        if (asked.has("messages") && (mode === "messages" || mode === "values"))
          for (const [event, data] of messages.take(mode, payload))
            options.events.publish(event + suffix, data);
      }
    })
    .catch((error: unknown) => {
      throw asRunFailure(error);
    });
  await options.events.flush();
  return resultOf(graph, run);
}

type StreamChunk = [string[], string, unknown];

/**
 * The graph's stream chunks (`[namespace, mode, payload]`). With the `events` stream mode asked for, the graph runs
 * under `streamEvents` (LangChain's callback events, v2): the root's own stream chunks are taken from it as usual,
 * and every other event is published as an `events` event, as LangGraph's servers send them.
 */
async function* chunksOf(
  graph: ServedGraph,
  input: unknown,
  events: RunEventWriter | undefined,
  options: Parameters<ServedGraph["stream"]>[1],
): AsyncGenerator<StreamChunk> {
  if (!events) {
    yield* (await graph.stream(input, options)) as AsyncIterable<StreamChunk>;
    return;
  }
  let root: string | undefined;
  for await (const event of graph.streamEvents(input, { ...options, version: "v2" })) {
    root ??= event.run_id; // the first event is the root's start
    if (event.event === "on_chain_stream" && event.run_id === root)
      yield (event.data as { chunk: StreamChunk }).chunk;
    else if (!event.tags?.includes("langsmith:hidden")) events.publish("events", event);
  }
}

/** Nothing to run yet: the thread waits for people to decide. */
const WAIT = Symbol("wait");

type Snapshot = Awaited<ReturnType<ServedGraph["getState"]>>;

/** The Keel approvals a thread's state waits for (interrupts whose value is an ApprovalRequest). */
function keelApprovals(snapshot: Snapshot): PendingApproval[] {
  return snapshot.tasks.flatMap((task) =>
    task.interrupts.flatMap((i) => {
      const request = ApprovalRequest.safeParse(i.value);
      return request.success && i.id ? [{ interrupt_id: i.id, request: request.data }] : [];
    }),
  );
}

/**
 * A Keel approval as Agent Inbox reads an interrupt: one `HumanInterrupt` per held action (what to do, which
 * answers are allowed, a markdown description), each with Keel's own request beside it. Agent Inbox's answers
 * (accept, edit, response, ignore) are taken by the approvals store (runs/resume.ts).
 */
export function inboxView(request: ApprovalRequest): unknown[] {
  return request.actions.map((action) => ({
    action_request: { action: action.tool, args: action.args },
    config: { allow_accept: true, allow_edit: true, allow_respond: true, allow_ignore: true },
    description: [
      `**${action.tool}** — ${action.risk} risk, ${action.decision === "sync_approval" ? "needs a second person (sync approval)" : "needs approval"}`,
      `Task ${request.task_id} (${request.agent} agent): ${request.objective}`,
      ...(action.why?.length ? [`Why it is held: ${action.why.join("; ")}`] : []),
      "Accept to run it as proposed, edit its arguments, respond to reject it with a reason, or ignore to reject it.",
    ].join("\n\n"),
    keel: { ...request, actions: [action] },
  }));
}

/** The thread's state after the drive, and the outcome the task settles with. */
async function resultOf(graph: ServedGraph, run: RunRow): Promise<RunDriveResult> {
  const snapshot = await graph.getState({ configurable: { thread_id: run.thread_id } });
  const interrupts: Record<string, unknown[]> = {};
  for (const task of snapshot.tasks) {
    if (task.interrupts.length === 0) continue;
    // The thread shows Keel's approvals in Agent Inbox's form; the state keeps the graph's own values.
    interrupts[task.id] = task.interrupts.map((i) => {
      const request = ApprovalRequest.safeParse(i.value);
      return request.success ? { ...i, value: inboxView(request.data) } : i;
    });
  }
  const pending = keelApprovals(snapshot);
  // Keel's orchestrator leaves its plan and results in its state: the task settles on them as any request does.
  const values = (snapshot.values ?? {}) as { plan?: Plan; results?: AgentResult[]; final_answer?: string };
  const results = Array.isArray(values.results) ? values.results : [];
  return {
    values: snapshot.values,
    interrupts,
    next: [...snapshot.next],
    outcome: {
      thread_id: run.thread_id,
      status: pending.length > 0 ? "waiting_for_approval" : "done",
      plan: values.plan && Array.isArray(values.plan.tasks) ? values.plan : undefined,
      results,
      final_answer: typeof values.final_answer === "string" ? values.final_answer : undefined,
      pending,
    },
  };
}
