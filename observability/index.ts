import { alignLangSmithSwitch, type KeelConfig } from "../core/config.js";
import { startLangSmith, type LangSmith } from "./langsmith.js";
import { startTracing, type Tracing } from "./otel.js";
import { configureAuditLog } from "./audit.js";
import { configureTrajectory } from "./trajectory.js";

/** What a process traces to: OpenTelemetry, LangSmith and the trajectory store. */
export interface Observability {
  tracing: Tracing;
  langsmith: LangSmith;
  /** Flushes both exporters, each within its bound. Call once, before the process ends. */
  shutdown(): Promise<void>;
}

const NONE: Observability = {
  tracing: {
    enabled: false,
    exporter: "none",
    flush: () => Promise.resolve(),
    shutdown: () => Promise.resolve(),
  },
  langsmith: { enabled: false, callbacks: [], flush: () => Promise.resolve() },
  shutdown: () => Promise.resolve(),
};

let current: Observability = NONE;

/**
 * Starts observability for this process from its configuration. Entry points (the CLI, the benchmark) call it
 * once; a process that never does (a graph served by `langgraph dev`) still records its trajectory, and its
 * spans are no-ops.
 */
export function startObservability(config: KeelConfig): Observability {
  configureTrajectory({ enabled: config.observability.trajectory });
  configureAuditLog(config.observability);
  const tracing = startTracing(config);
  const langsmith = startLangSmith(config.observability.langsmith);
  alignLangSmithSwitch(langsmith.enabled);
  current = {
    tracing,
    langsmith,
    shutdown: async () => {
      await Promise.all([tracing.shutdown(), langsmith.flush()]);
    },
  };
  return current;
}

/** The observability this process started (or none). */
export function observability(): Observability {
  return current;
}
