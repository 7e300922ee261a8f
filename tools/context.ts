import type pg from "pg";
import type { AgentType } from "../agents/contracts.js";

/** What a tool receives besides its arguments. Tools get the database through here, never by importing it. */
export interface ToolContext {
  /** The Keel database pool, opened lazily: tools that need no database never start one. */
  db: () => Promise<pg.Pool>;
  signal: AbortSignal;
  /**
   * When the task's time is up (epoch ms). Synchronous work such as the sandbox blocks the event loop, so it
   * cannot wait for the abort signal's timer to fire; it checks this deadline itself.
   */
  deadline?: number;
  threadId: string;
  toolCallId: string;
  agent: AgentType;
  limits: ToolLimits;
  /** Who approved this call, when it needed approval. */
  approvedBy?: string;
}

export interface ToolLimits {
  sqlRowLimit: number;
  sqlTimeoutMs: number;
  sandboxTimeoutMs: number;
  sandboxMemoryBytes: number;
}
