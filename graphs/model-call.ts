import { BaseCallbackHandler } from "@langchain/core/callbacks/base";
import { AIMessage, type BaseMessage } from "@langchain/core/messages";
import type { LLMResult } from "@langchain/core/outputs";
import type { LangGraphRunnableConfig } from "@langchain/langgraph";
import { errorClass, inSpan, KEEL, recordSpan, SpanKind } from "../observability/spans.js";
import { recordStepQuietly } from "../observability/trajectory.js";
import { addUsage, charge } from "../tools/usage.js";
import { ModelOutputError, ModelStreamCutError, TransientError } from "../core/errors.js";
import { boundedSignal } from "../core/signals.js";
import type { GraphDeps } from "./deps.js";
import { runContext } from "./run-context.js";

/** Token usage of one model call, as the model reported it (the offline model counts deterministically). */
export interface CallUsage {
  input_tokens: number;
  output_tokens: number;
}

/** Who makes a model call, for its span and its trajectory step. */
export interface CallMeta {
  /** planner, synthesizer, or a sub-agent type. */
  agent: string;
  /** The AgentTask the call works on (none for the planner and the synthesizer). */
  taskId?: string;
  /** The sub-agent's model turn, from 1. */
  turn?: number;
  /** What the model is sent; only a summary is stored. */
  messages: readonly BaseMessage[];
}

const TEXT_CHARS = 600;

function textOf(message: BaseMessage | undefined): string {
  if (!message) return "";
  return typeof message.content === "string" ? message.content : JSON.stringify(message.content);
}

/** The model input as the store keeps it: how many messages, and the end of the conversation. */
function inputSummary(messages: readonly BaseMessage[]) {
  const last = messages.at(-1);
  return {
    messages: messages.length,
    last: { role: last?.getType() ?? "none", text: textOf(last).slice(0, TEXT_CHARS) },
  };
}

interface Reply {
  usage: CallUsage;
  finishReasons: string[];
  text: string;
  toolCalls: { name: string; args: unknown }[];
}

function replyOf(output: LLMResult): Reply {
  const generation = output.generations[0]?.[0] as
    | {
        generationInfo?: { finish_reason?: string };
        message?: BaseMessage & {
          usage_metadata?: CallUsage;
          tool_calls?: { name: string; args: unknown }[];
          response_metadata?: { finish_reason?: string };
        };
      }
    | undefined;
  const message = generation?.message;
  const finish = generation?.generationInfo?.finish_reason ?? message?.response_metadata?.finish_reason;
  return {
    usage: {
      input_tokens: message?.usage_metadata?.input_tokens ?? 0,
      output_tokens: message?.usage_metadata?.output_tokens ?? 0,
    },
    finishReasons: finish ? [finish] : [],
    text: textOf(message).slice(0, TEXT_CHARS),
    toolCalls: (message?.tool_calls ?? []).map((c) => ({ name: c.name, args: c.args })),
  };
}

/**
 * Watches one try of a model call. `lc_prefer_streaming` makes LangChain stream the reply of a model that can
 * (ChatOpenAI) even inside `invoke`, so the first token is seen when it arrives and LangGraph's `messages`
 * stream passes tokens on; the chunks are counted so a stream that stops early can be told from one that ended.
 */
class TryWatch extends BaseCallbackHandler {
  name = "keel_model_try";
  lc_prefer_streaming = true;
  chunks = 0;
  reply: Reply | undefined;
  constructor(private readonly onFirstToken: () => void) {
    super();
  }
  override handleLLMNewToken(): void {
    if (this.chunks++ === 0) this.onFirstToken();
  }
  override handleLLMEnd(output: LLMResult): void {
    this.onFirstToken();
    this.reply = replyOf(output);
  }
}

/** Settles with `work`, or rejects as soon as `signal` aborts, whether or not the model honours the signal. */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason as Error);
    const onAbort = () => reject(signal.reason as Error);
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/**
 * Every model call of a run goes through here: charged to the task tree's budget before it runs, through the
 * model endpoint's retry and circuit breaker, traced as an OpenTelemetry GenAI `chat` span, recorded as a
 * trajectory step, and its tokens and cost added to the tree afterwards.
 */
export async function callModel<T>(
  deps: GraphDeps,
  config: LangGraphRunnableConfig,
  meta: CallMeta,
  invoke: (options: { signal: AbortSignal; callbacks: object[] }) => Promise<T>,
): Promise<{ value: T; usage: CallUsage; cost_usd: number; finishReason?: string }> {
  const { threadId, attempt } = runContext(config);
  const info = deps.modelInfo ?? { provider: "unknown", name: "unknown" };
  const started = new Date();
  const startedMs = performance.now();
  let firstTokenMs: number | undefined;
  let reply: Reply = {
    usage: { input_tokens: 0, output_tokens: 0 },
    finishReasons: [],
    text: "",
    toolCalls: [],
  };
  const step = (status: string, extra: object) =>
    threadId
      ? recordStepQuietly(deps.db, {
          thread_id: threadId,
          task_id: meta.taskId,
          agent: meta.agent,
          kind: "model_call",
          name: info.name,
          status,
          input: inputSummary(meta.messages),
          attempt,
          turn: meta.turn,
          started_at: started,
          duration_ms: performance.now() - startedMs,
          first_token_ms: firstTokenMs,
          ...extra,
        })
      : Promise.resolve();

  return inSpan(
    `chat ${info.name}`,
    {
      "gen_ai.operation.name": "chat",
      "gen_ai.system": info.provider,
      "gen_ai.provider.name": info.provider,
      "gen_ai.request.model": info.name,
      ...(info.maxTokens ? { "gen_ai.request.max_tokens": info.maxTokens } : {}),
      [KEEL.agent]: meta.agent,
      ...(meta.taskId ? { [KEEL.taskId]: meta.taskId } : {}),
      ...(threadId ? { [KEEL.rootTaskId]: threadId } : {}),
      ...(meta.turn ? { [KEEL.turn]: meta.turn } : {}),
      ...(attempt ? { [KEEL.attempt]: attempt } : {}),
    },
    async (span) => {
      const pool = threadId ? await deps.db() : undefined;
      try {
        if (pool && threadId) await charge(pool, threadId, "model", deps.policy.budgets);
        const value = await deps.dependencies.get("model endpoint").execute(
          (signal) => {
            // Each try is bounded: a server that takes the request and never answers is a transient failure.
            const limit = deps.limits.modelTimeoutMs;
            // The try's own bound (its timeout, the endpoint policy) is raced here, so a model that ignores its
            // signal cannot outlast it; the run's abort (cancel, deadline, a stopping worker) reaches the model
            // through its signal, and LangGraph itself stops the run on it. Both are released when the try ends.
            const bound = boundedSignal([signal], limit);
            const tryBound = bound.signal;
            const all = boundedSignal([config.signal, tryBound]);
            const combined = all.signal;
            const bounded = (error: unknown): never => {
              if (bound.timedOut() && !signal.aborted && !config.signal?.aborted) {
                throw new TransientError(
                  `the model ${info.name} did not answer within ${limit} ms (KEEL_MODEL_TIMEOUT_MS)`,
                  undefined,
                  undefined,
                  "timeout",
                );
              }
              throw error;
            };
            const watch = new TryWatch(() => (firstTokenMs ??= performance.now() - startedMs));
            const cut = (error: unknown): never => {
              // A stream that broke after it began is a cut reply (retried), not a bare "terminated"; an error
              // after a finished stream (the structured-output parser's) is not.
              const finished = (watch.reply?.finishReasons.length ?? 0) > 0;
              if (watch.chunks > 0 && !finished && !combined.aborted && !(error instanceof TransientError))
                throw new ModelStreamCutError(info.name, watch.chunks, (error as Error).message, {
                  cause: error,
                });
              throw error;
            };
            return untilAborted(invoke({ signal: combined, callbacks: [watch] }), tryBound)
              .catch(bounded)
              .catch(cut)
              .then((value) => {
                const r = watch.reply;
                // A streamed reply that ends without a finish reason was cut short by the server or a proxy.
                if (watch.chunks > 0 && r && r.finishReasons.length === 0)
                  throw new ModelStreamCutError(
                    info.name,
                    watch.chunks,
                    "the stream ended without a finish reason",
                  );
                if (r)
                  reply = {
                    ...r,
                    usage: {
                      input_tokens: reply.usage.input_tokens + r.usage.input_tokens,
                      output_tokens: reply.usage.output_tokens + r.usage.output_tokens,
                    },
                  };
                return value;
              })
              .finally(() => {
                all.release();
                bound.release();
              });
          },
          config.signal,
          {
            onRetry: ({ attempt: retry, error, failedAt }) => {
              recordSpan(
                "retry model endpoint",
                {
                  [KEEL.dependency]: "model endpoint",
                  [KEEL.attempt]: retry,
                  "error.type": errorClass(error),
                },
                failedAt,
                Date.now(),
              );
              void (threadId
                ? recordStepQuietly(deps.db, {
                    thread_id: threadId,
                    task_id: meta.taskId,
                    agent: meta.agent,
                    kind: "retry",
                    name: "model endpoint",
                    status: "retrying",
                    error: (error as Error).message ?? String(error),
                    error_class: errorClass(error),
                    attempt: retry,
                    started_at: new Date(failedAt),
                    duration_ms: Date.now() - failedAt,
                  })
                : undefined);
            },
          },
        );
        const { usage } = reply;
        const cost_usd = deps.price(usage);
        span.setAttributes({
          "gen_ai.usage.input_tokens": usage.input_tokens,
          "gen_ai.usage.output_tokens": usage.output_tokens,
          "gen_ai.response.finish_reasons": reply.finishReasons,
          [KEEL.costUsd]: cost_usd,
        });
        if (pool && threadId)
          await addUsage(pool, threadId, usage.input_tokens + usage.output_tokens, cost_usd);
        await step("ok", {
          output: { text: reply.text, tool_calls: reply.toolCalls },
          input_tokens: usage.input_tokens,
          output_tokens: usage.output_tokens,
          cost_usd,
        });
        return { value, usage, cost_usd, finishReason: reply.finishReasons[0] };
      } catch (error) {
        await step("error", {
          error: (error as Error).message ?? String(error),
          error_class: errorClass(error),
        });
        throw error;
      }
    },
    { kind: SpanKind.CLIENT },
  );
}

/** Whether `text` is JSON as written (a streamed call's arguments are parsed leniently, as partial JSON). */
function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

/**
 * Refuses a reply nothing can be done with, as a named model fault: empty, cut off at the token limit, or a tool
 * call whose arguments are not JSON. `tools` are the names the agent has (none for the synthesizer); a call to a
 * name that is no tool at all is a fault too (a call to another agent's tool is the contract's to refuse).
 * Returns the reply as one plain message (a streamed reply arrives as chunks), with its finish reason, which a
 * streamed reply reports only to callbacks (`finishReason` from callModel).
 */
export function checkReply(
  reply: BaseMessage,
  model: string,
  options: { maxTokens?: number; knownTools?: ReadonlySet<string>; finishReason?: string } = {},
): AIMessage {
  const message = reply as BaseMessage & {
    tool_calls?: { name: string; args: Record<string, unknown>; id?: string }[];
    invalid_tool_calls?: { name?: string; error?: string }[];
    tool_call_chunks?: { name?: string; args?: string }[];
    response_metadata?: { finish_reason?: string };
    usage_metadata?: AIMessage["usage_metadata"];
  };
  const finish = options.finishReason ?? message.response_metadata?.finish_reason;
  if (finish === "length") {
    throw new ModelOutputError(
      model,
      `was cut off at its token limit${options.maxTokens ? ` (${options.maxTokens}, KEEL_MAX_TOKENS)` : ""} before it finished its reply`,
    );
  }
  const invalid =
    message.invalid_tool_calls?.[0] ??
    message.tool_call_chunks?.find((c) => c.args !== undefined && c.args !== "" && !isJson(c.args));
  if (invalid) {
    const error = "error" in invalid ? invalid.error : undefined;
    throw new ModelOutputError(
      model,
      `called ${invalid.name ?? "a tool"} with arguments that are not JSON${error ? ` (${error})` : ""}`,
    );
  }
  const calls = message.tool_calls ?? [];
  const unknown = options.knownTools && calls.find((c) => !options.knownTools!.has(c.name));
  if (unknown) throw new ModelOutputError(model, `called "${unknown.name}", which is not a tool`);
  if (calls.length === 0 && textOf(reply).trim() === "")
    throw new ModelOutputError(model, "returned an empty reply");
  return new AIMessage({
    id: message.id,
    content: message.content,
    tool_calls: calls,
    usage_metadata: message.usage_metadata,
    response_metadata: { ...message.response_metadata, ...(finish ? { finish_reason: finish } : {}) },
  });
}
