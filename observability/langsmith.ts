import { awaitAllCallbacks } from "@langchain/core/callbacks/promises";
import { LangChainTracer } from "@langchain/core/tracers/tracer_langchain";
import { Client } from "langsmith";
import type { KeelConfig } from "../core/config.js";

export interface LangSmith {
  readonly enabled: boolean;
  /** Callbacks to pass with every run: LangChain's own tracer, with a client whose waits are bounded. */
  readonly callbacks: LangChainTracer[];
  /** Sends what is queued, waiting at most the configured bound; an unreachable endpoint never holds the exit. */
  flush(): Promise<void>;
}

const OFF: LangSmith = { enabled: false, callbacks: [], flush: () => Promise.resolve() };

/**
 * LangSmith tracing through LangChain's integration, on only with LANGSMITH_TRACING=true and a key. Keel builds
 * the client itself, rather than letting LangChain build one from the environment, so that a request to an
 * unreachable endpoint times out within the flush bound instead of the client's default of minutes.
 */
export function startLangSmith(
  config: KeelConfig["observability"]["langsmith"],
  warn: (line: string) => void = (l) => console.error(l),
): LangSmith {
  if (!config.enabled) return OFF;
  if (!config.apiKey) {
    warn("keel: LANGSMITH_TRACING=true but LANGSMITH_API_KEY is not set; LangSmith tracing is off.");
    return OFF;
  }
  const client = newClient(config, config.flushMs, 0);
  const tracer = new LangChainTracer({ client, projectName: config.project });
  return {
    enabled: true,
    callbacks: [tracer],
    flush: () =>
      Promise.race([
        (async () => {
          await awaitAllCallbacks();
          await client.awaitPendingTraceBatches();
        })().catch(() => undefined),
        new Promise<void>((resolve) => setTimeout(resolve, config.flushMs).unref()),
      ]),
  };
}

/** A LangSmith client with Keel's bounds, for uploads (eval experiments); none unless LangSmith is on with a key. */
export function langsmithClient(config: KeelConfig["observability"]["langsmith"]): Client | undefined {
  if (!config.enabled || !config.apiKey) return undefined;
  return newClient(config, 10_000, 1);
}

function newClient(
  config: KeelConfig["observability"]["langsmith"],
  timeoutMs: number,
  retries: number,
): Client {
  return new Client({
    apiKey: config.apiKey,
    apiUrl: config.endpoint,
    timeout_ms: timeoutMs,
    callerOptions: { maxRetries: retries },
  });
}

/** What LangSmith groups a run by: the Keel task (its thread), with the attempt as metadata. */
export function langsmithRunConfig(taskId: string, attempt?: number) {
  return {
    runName: `keel task ${taskId}`,
    tags: ["keel", `keel_task:${taskId}`],
    metadata: { keel_task_id: taskId, thread_id: taskId, ...(attempt ? { keel_attempt: attempt } : {}) },
  };
}
