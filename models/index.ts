import type { BaseChatModel } from "@langchain/core/language_models/chat_models";
import { ChatOpenAI } from "@langchain/openai";
import type { KeelConfig } from "../core/config.js";
import { OfflineChatModel } from "./offline/model.js";

export { OfflineChatModel } from "./offline/model.js";

let announced = false;

/**
 * The one model factory. An OpenAI key or base URL selects `ChatOpenAI` (any OpenAI-compatible server);
 * with neither, or with KEEL_MODEL=offline, Keel's deterministic offline model is used and says so once.
 */
export function createModel(
  config: KeelConfig,
  notice: (line: string) => void = (l) => console.error(l),
): BaseChatModel {
  const { apiKey, baseURL, name } = config.model;
  if (name === "offline" || (!apiKey && !baseURL)) {
    if (!announced) {
      announced = true;
      notice(
        "keel: using the offline model (deterministic rules, not an LLM). Set OPENAI_API_KEY / OPENAI_BASE_URL / KEEL_MODEL to use a real model.",
      );
    }
    return new OfflineChatModel({
      sqlRowLimit: config.limits.sqlRowLimit,
      maxTokens: config.model.maxTokens,
    });
  }
  return new ChatOpenAI({
    model: name,
    // Servers such as vLLM or Ollama need no key, but the client insists on one.
    apiKey: apiKey ?? "not-needed",
    configuration: baseURL ? { baseURL } : undefined,
    temperature: config.model.temperature ?? 0,
    maxTokens: config.model.maxTokens,
    // Retries and the circuit breaker are Keel's (one place, Retry-After respected), not the client's.
    maxRetries: 0,
    // Keel bounds each try itself (callModel); this is a backstop for calls made outside it.
    timeout: config.limits.modelTimeoutMs,
  });
}

/** What the model setting means, for progress output. */
export function describeModel(config: KeelConfig): string {
  const { apiKey, baseURL, name } = config.model;
  if (name === "offline" || (!apiKey && !baseURL)) return "offline model (rules)";
  return `${name}${baseURL ? ` at ${baseURL}` : ""}`;
}

/** The model as traces describe it (OpenTelemetry GenAI: provider, requested model, max tokens). */
export function modelInfo(config: KeelConfig): { provider: string; name: string; maxTokens: number } {
  const { apiKey, baseURL, name, maxTokens } = config.model;
  const offline = name === "offline" || (!apiKey && !baseURL);
  return { provider: offline ? "keel.offline" : "openai", name: offline ? "offline" : name, maxTokens };
}
