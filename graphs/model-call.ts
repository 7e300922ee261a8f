import type { LLMResult } from "@langchain/core/outputs";
import type { LangGraphRunnableConfig } from "@langchain/langgraph";
import { addUsage, charge } from "../tools/usage.js";
import type { GraphDeps } from "./deps.js";

/** Token usage of one model call, as the model reported it (the offline model counts deterministically). */
export interface CallUsage {
  input_tokens: number;
  output_tokens: number;
}

function usageOf(output: LLMResult): CallUsage {
  const message = (output.generations[0]?.[0] as { message?: { usage_metadata?: CallUsage } } | undefined)
    ?.message;
  return {
    input_tokens: message?.usage_metadata?.input_tokens ?? 0,
    output_tokens: message?.usage_metadata?.output_tokens ?? 0,
  };
}

/**
 * Every model call of a run goes through here: charged to the task tree's budget before it runs, through the
 * model endpoint's retry and circuit breaker, and its tokens and cost added to the tree afterwards.
 */
export async function callModel<T>(
  deps: GraphDeps,
  config: LangGraphRunnableConfig,
  invoke: (options: { signal: AbortSignal; callbacks: object[] }) => Promise<T>,
): Promise<{ value: T; usage: CallUsage; cost_usd: number }> {
  const threadId = config.configurable?.thread_id as string | undefined;
  const pool = threadId ? await deps.db() : undefined;
  if (pool && threadId) await charge(pool, threadId, "model", deps.policy.budgets);
  const usage: CallUsage = { input_tokens: 0, output_tokens: 0 };
  const value = await deps.dependencies.get("model endpoint").execute((signal) => {
    const combined = config.signal ? AbortSignal.any([config.signal, signal]) : signal;
    return invoke({
      signal: combined,
      callbacks: [
        {
          handleLLMEnd(output: LLMResult) {
            const u = usageOf(output);
            usage.input_tokens += u.input_tokens;
            usage.output_tokens += u.output_tokens;
          },
        },
      ],
    });
  }, config.signal);
  const cost_usd = deps.price(usage);
  if (pool && threadId) await addUsage(pool, threadId, usage.input_tokens + usage.output_tokens, cost_usd);
  return { value, usage, cost_usd };
}
