import type { CallbackManagerForLLMRun } from "@langchain/core/callbacks/manager";
import {
  BaseChatModel,
  type BaseChatModelCallOptions,
  type BindToolsInput,
} from "@langchain/core/language_models/chat_models";
import { AIMessageChunk, type BaseMessage } from "@langchain/core/messages";
import type { ChatResult } from "@langchain/core/outputs";
import type { Runnable } from "@langchain/core/runnables";
import {
  codeTurn,
  communicationTurn,
  dataTurn,
  readTranscript,
  researchTurn,
  synthesize,
  type Turn,
} from "./agents.js";
import { planRequest } from "./planner.js";

interface OfflineCallOptions extends BaseChatModelCallOptions {
  tools?: BindToolsInput[];
}

function toolName(tool: BindToolsInput): string {
  const t = tool as { name?: string; function?: { name?: string } };
  return t.function?.name ?? t.name ?? "";
}

/**
 * Keel's offline model: a deterministic, rule-based chat model. It is not a language model. It reads which tools
 * it was given to know its role (planner via `submit_plan`, one of the four sub-agents by their tools, the
 * synthesizer with none), and decides from the words of the request and the tool results so far. Its tools
 * really run; only the reasoning is rules. Tool-call ids are derived from the task and the turn, so the same
 * request always yields the same trajectory.
 */
export class OfflineChatModel extends BaseChatModel<OfflineCallOptions> {
  constructor(private readonly options: { sqlRowLimit: number; maxTokens?: number } = { sqlRowLimit: 50 }) {
    super({});
  }

  _llmType(): string {
    return "keel-offline";
  }

  override bindTools(
    tools: BindToolsInput[],
    kwargs?: Partial<OfflineCallOptions>,
  ): Runnable<
    import("@langchain/core/language_models/base").BaseLanguageModelInput,
    import("@langchain/core/messages").AIMessageChunk,
    OfflineCallOptions
  > {
    return this.withConfig({ ...kwargs, tools });
  }

  private decide(messages: BaseMessage[], tools: string[]): Turn {
    if (tools.includes("submit_plan")) {
      const request = [...messages].reverse().find((m) => m.getType() === "human");
      const text = typeof request?.content === "string" ? request.content : "";
      return { content: "", calls: [{ name: "submit_plan", args: planRequest(text) }] };
    }
    const transcript = readTranscript(messages);
    if (tools.includes("search_kb")) return researchTurn(transcript);
    if (tools.includes("run_sql")) return dataTurn(transcript, this.options.sqlRowLimit);
    if (tools.includes("run_javascript")) return codeTurn(transcript);
    if (tools.includes("send_message")) return communicationTurn(transcript);
    const prompt = messages
      .filter((m) => m.getType() === "human")
      .map((m) => (typeof m.content === "string" ? m.content : JSON.stringify(m.content)))
      .join("\n");
    return { content: synthesize(prompt), calls: [] };
  }

  async _generate(
    messages: BaseMessage[],
    options: this["ParsedCallOptions"],
    _run?: CallbackManagerForLLMRun,
  ): Promise<ChatResult> {
    options.signal?.throwIfAborted();
    const turn = this.decide(messages, (options.tools ?? []).map(toolName));
    const taskId = readTranscript(messages).taskId;
    const step = messages.filter((m) => m.getType() === "ai").length + 1;
    const finish_reason = turn.calls.length > 0 ? "tool_calls" : "stop";
    const message = new AIMessageChunk({
      content: turn.content,
      tool_calls: turn.calls.map((call, i) => ({
        ...call,
        id: `call_${taskId}_${step}_${i + 1}`,
        type: "tool_call" as const,
      })),
      usage_metadata: countTokens(messages, turn),
      response_metadata: { model_name: "offline", finish_reason },
    });
    return Promise.resolve({
      generations: [{ text: turn.content, message, generationInfo: { finish_reason } }],
    });
  }
}

/**
 * A deterministic token count for the offline model (about four characters a token), so that token budgets,
 * costs and traces behave offline as they would with a real model.
 */
function countTokens(
  messages: BaseMessage[],
  turn: { content: string; calls: { name: string; args: unknown }[] },
): { input_tokens: number; output_tokens: number; total_tokens: number } {
  const chars = (m: BaseMessage) =>
    (typeof m.content === "string" ? m.content : JSON.stringify(m.content)).length;
  const input_tokens = Math.ceil(messages.reduce((n, m) => n + chars(m), 0) / 4);
  const output_tokens = Math.ceil((turn.content.length + JSON.stringify(turn.calls).length) / 4);
  return { input_tokens, output_tokens, total_tokens: input_tokens + output_tokens };
}
