import type pg from "pg";
import type { AgentType } from "../agents/contracts.js";
import type { Dependencies } from "../policy/resilience.js";

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
  /** The AgentTask (t1, …) making the call, for the trajectory store. */
  taskId?: string;
  /** LangGraph checkpoint namespace of the node making the call: with the thread and call id, the effect key. */
  checkpointNs?: string;
  toolCallId: string;
  agent: AgentType;
  limits: ToolLimits;
  /** Who approved this call, when it needed approval. */
  approvedBy?: string;
  /** Where notify_webhook posts (KEEL_WEBHOOK_URL); unset, it refuses. */
  webhookUrl?: string;
  /** Retry and circuit breaker per outside dependency, shared across the process. */
  dependencies?: Dependencies;
  /**
   * For effects in Keel's own database: the transaction the ledger row commits in. A tool with internal effects
   * writes through this client, so its effect and its ledger row commit together or not at all.
   */
  tx?: pg.PoolClient;
  /** For effects on outside systems: pass this as the idempotency key, so a repeated call is recognised. */
  idempotencyKey?: string;
  /** The running worker's fencing token for the thread: an internal effect commits only while it holds. */
  fenceToken?: string;
  /** The task that token belongs to (the thread's own id, unless a run of the Agent Server API carries it). */
  fenceTaskId?: string;
  /**
   * Fault injection (evals and tests): called before each try of a tool; it may throw a transient error, as a
   * flaky dependency would, so that retries are exercised on purpose.
   */
  injectFault?: (tool: string) => void;
  /** Test hook: a named point at which the process kills itself, to prove crash safety. */
  failpoint?: string;
}

export interface ToolLimits {
  sqlRowLimit: number;
  sqlTimeoutMs: number;
  sandboxTimeoutMs: number;
  sandboxMemoryBytes: number;
}
