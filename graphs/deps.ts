import { POLICY_CATALOG } from "../agents/index.js";
import type { BaseChatModel } from "@langchain/core/language_models/chat_models";
import type pg from "pg";
import type { AgentType } from "../agents/contracts.js";
import { lazyDatabase } from "../checkpoints/database.js";
import { loadConfig, type KeelConfig } from "../core/config.js";
import { SystemError } from "../core/errors.js";
import { createModel, modelInfo } from "../models/index.js";
import { priceCall, PRICES, type TokenUsage } from "../models/prices.js";
import { loadPolicy, type Policy } from "../policy/file.js";
import { Dependencies } from "../policy/resilience.js";

/** Which part of the orchestration a model call is for; tests script each role separately. */
export type ModelRole = "planner" | "synthesizer" | AgentType;

export interface ModelInfo {
  provider: string;
  name: string;
  maxTokens?: number;
}

/** What graph builders need from the outside. Entry points build it; tests pass scripted models. */
export interface GraphDeps {
  model: (role: ModelRole) => BaseChatModel;
  db: () => Promise<pg.Pool>;
  limits: KeelConfig["limits"];
  /** Risk decisions, scope and budgets (keel.policy.yaml, or the defaults). */
  policy: Policy;
  /** Retry and circuit breaker per outside dependency (the model endpoint, external tools). */
  dependencies: Dependencies;
  /** USD for one model call's tokens. */
  price: (usage: TokenUsage) => number;
  /** What traces say about the model: gen_ai.provider.name, gen_ai.request.model, gen_ai.request.max_tokens. */
  modelInfo?: ModelInfo;
  failpoint?: string;
  /** System prompts that replace the built-in ones, by role (a release's prompts). */
  prompts?: Partial<Record<ModelRole, string>>;
  /** Where notify_webhook posts. */
  webhookUrl?: string;
  /** Fault injection for evals: may throw a transient error before a tool of the thread runs. */
  faults?: (threadId: string, tool: string) => void;
}

/**
 * Dependencies from the environment, for graphs served by `langgraph dev`: the configured model and a lazily
 * opened database (embedded Postgres unless DATABASE_URL is set).
 */
export function defaultDeps(config: KeelConfig = loadConfig()): GraphDeps {
  let policy: Policy | undefined;
  // Read on first use, so that importing a served graph never fails on the policy file; a bad file is reported
  // when a run (or a worker) first needs the policy.
  return depsWith(config, () => (policy ??= loadPolicy(config.policyFile, POLICY_CATALOG)));
}

/** What a release fixes of an agent's behaviour (runtime/releases/spec.ts has its schema). */
export interface Behaviour {
  model: { name: string; base_url?: string; max_tokens: number; temperature: number };
  prompts: Partial<Record<ModelRole, string>>;
  policy: Policy;
  limits: KeelConfig["limits"];
}

/**
 * Dependencies that run a release: its model, prompts, policy and limits; the key and the database come from
 * this process's configuration. A release naming a real model where this process has neither OPENAI_API_KEY nor
 * an endpoint is refused (never quietly run on the offline model).
 */
export function behaviourDeps(config: KeelConfig, behaviour: Behaviour, release: string): GraphDeps {
  const { model } = behaviour;
  const offline = model.name === "offline";
  const baseURL = model.base_url ?? config.model.baseURL;
  if (!offline && !config.model.apiKey && !baseURL)
    throw new SystemError(
      "configuration_error",
      `Release ${release} runs the model "${model.name}", but this process has neither OPENAI_API_KEY nor OPENAI_BASE_URL; set them where its workers run.`,
    );
  const configured: KeelConfig = {
    ...config,
    model: offline
      ? { name: "offline", maxTokens: model.max_tokens, temperature: model.temperature }
      : {
          apiKey: config.model.apiKey,
          baseURL,
          name: model.name,
          maxTokens: model.max_tokens,
          temperature: model.temperature,
        },
    limits: behaviour.limits,
  };
  return { ...depsWith(configured, () => behaviour.policy), prompts: behaviour.prompts };
}

function depsWith(config: KeelConfig, currentPolicy: () => Policy): GraphDeps {
  // Created on first use, so that importing a graph module neither builds a model nor prints its notice.
  let model: BaseChatModel | undefined;
  const database = lazyDatabase(config);
  return {
    model: () => (model ??= createModel(config)),
    db: async () => (await database()).pool,
    limits: config.limits,
    get policy() {
      return currentPolicy();
    },
    dependencies: new Dependencies({
      retries: config.resilience.retries,
      baseMs: config.resilience.baseMs,
      breakerThreshold: config.resilience.breakerThreshold,
      halfOpenAfterMs: config.resilience.halfOpenSeconds * 1000,
    }),
    // The policy file's price table extends the built-in one (policy.prices).
    price: (usage) => priceCall(config.model.name, usage, { ...PRICES, ...currentPolicy().prices }).cost_usd,
    modelInfo: modelInfo(config),
    failpoint: config.failpoint,
    webhookUrl: config.webhookUrl,
  };
}

export { modelInfo };
