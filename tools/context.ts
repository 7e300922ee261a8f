import type pg from "pg";
import type { AgentType } from "../agents/contracts.js";

/** What a tool receives besides its arguments. Tools get the database through here, never by importing it. */
export interface ToolContext {
  /** The Keel database pool, opened lazily: tools that need no database never start one. */
  db: () => Promise<pg.Pool>;
  signal: AbortSignal;
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
