import type { BaseChatModel } from "@langchain/core/language_models/chat_models";
import type pg from "pg";
import type { AgentType } from "../agents/contracts.js";
import { lazyDatabase } from "../checkpoints/database.js";
import { loadConfig, type KeelConfig } from "../core/config.js";
import { createModel } from "../models/index.js";

/** Which part of the orchestration a model call is for; tests script each role separately. */
export type ModelRole = "planner" | "synthesizer" | AgentType;

/** What graph builders need from the outside. Entry points build it; tests pass scripted models. */
export interface GraphDeps {
  model: (role: ModelRole) => BaseChatModel;
  db: () => Promise<pg.Pool>;
  limits: KeelConfig["limits"];
}

/**
 * Dependencies from the environment, for graphs served by `langgraph dev`: the configured model and a lazily
 * opened database (embedded Postgres unless DATABASE_URL is set).
 */
export function defaultDeps(config: KeelConfig = loadConfig()): GraphDeps {
  // Created on first use, so that importing a graph module neither builds a model nor prints its notice.
  let model: BaseChatModel | undefined;
  const database = lazyDatabase(config);
  return {
    model: () => (model ??= createModel(config)),
    db: async () => (await database()).pool,
    limits: config.limits,
  };
}
