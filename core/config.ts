import fs from "node:fs";
import path from "node:path";
import { z } from "zod";
import { InputError } from "./errors.js";

/**
 * The one place that reads environment variables. Everything else receives a `KeelConfig`.
 */
export const KeelConfig = z.object({
  databaseUrl: z.string().optional().describe("Postgres to use; unset -> embedded Postgres under dataDir"),
  dataDir: z.string().describe("Where Keel keeps local state (embedded Postgres)"),
  databasePoolSize: z.number().int().positive().describe("Connections one Keel process may hold"),
  policyFile: z
    .string()
    .optional()
    .describe("KEEL_POLICY_FILE, else ./keel.policy.yaml when present; none -> the default policy"),
  webhookUrl: z.string().optional().describe("KEEL_WEBHOOK_URL: where notify_webhook posts"),
  user: z
    .string()
    .describe("KEEL_USER: who submits and reviews from this shell, unless a flag says otherwise"),
  command: z
    .string()
    .describe(
      "How to run keel from this shell, for the commands Keel prints: keel when on PATH, else npx keel",
    ),
  failpoint: z
    .string()
    .optional()
    .describe("KEEL_FAILPOINT: a named point where the process kills itself (crash-safety tests only)"),
  model: z
    .object({
      apiKey: z.string().optional().describe("OPENAI_API_KEY"),
      baseURL: z.string().optional().describe("OPENAI_BASE_URL of any OpenAI-compatible server"),
      name: z.string().describe("KEEL_MODEL: model name, or 'offline'"),
      maxTokens: z.number().int().positive().describe("KEEL_MAX_TOKENS: most tokens one model reply may use"),
      temperature: z
        .number()
        .min(0)
        .max(2)
        .optional()
        .describe("Sampling temperature (a release's; default 0)"),
    })
    .describe("Model selection"),
  limits: z
    .object({
      maxRequestChars: z.number().int().positive().describe("Longest request accepted"),
      maxPlanTasks: z.number().int().positive().describe("Most AgentTasks one plan may hold"),
      maxAgentSteps: z.number().int().positive().describe("Most model turns one sub-agent may take"),
      defaultTaskTimeoutSeconds: z.number().positive().describe("timeout_seconds when a plan gives none"),
      sqlRowLimit: z.number().int().positive().describe("Most rows run_sql returns"),
      sqlTimeoutMs: z.number().int().positive().describe("statement_timeout for run_sql"),
      sandboxTimeoutMs: z.number().int().positive().describe("CPU time limit for sandboxed code"),
      sandboxMemoryBytes: z.number().int().positive().describe("Memory limit for sandboxed code"),
      modelTimeoutMs: z
        .number()
        .int()
        .positive()
        .describe("KEEL_MODEL_TIMEOUT_MS: how long one try of a model call may take before it is retried"),
    })
    .describe("Budgets and limits"),
  runtime: z
    .object({
      leaseSeconds: z
        .number()
        .positive()
        .describe("How long a worker's claim on a task lasts without a heartbeat"),
      idempotencyTtlHours: z.number().positive().describe("How long an idempotency key is remembered"),
      approvalTtlSeconds: z.number().positive().describe("How long an approval waits before it expires"),
      requestDeadlineSeconds: z.number().positive().describe("Wall-clock budget of one request"),
      maxRetries: z
        .number()
        .int()
        .nonnegative()
        .describe("Retries of a failed task, after the first attempt"),
      retryBaseMs: z.number().positive().describe("First retry delay; doubles each attempt, with jitter"),
      maxCrashes: z
        .number()
        .int()
        .positive()
        .describe(
          "KEEL_MAX_CRASHES: runs of a task that may lose their worker before it is stopped as a poison task",
        ),
      purgeAfterDays: z
        .number()
        .int()
        .positive()
        .optional()
        .describe(
          "KEEL_PURGE_AFTER_DAYS: finished requests older than this are purged (content erased, checkpoints deleted) by the workers' hourly housekeeping; unset keeps them",
        ),
      runEventsRetentionHours: z
        .number()
        .int()
        .positive()
        .describe(
          "KEEL_RUN_EVENTS_RETENTION_HOURS: how long an ended run's stream can be replayed; the workers' hourly housekeeping deletes older events (the run and its thread's state stay)",
        ),
    })
    .describe("Task runtime settings"),
  resilience: z
    .object({
      retries: z
        .number()
        .int()
        .nonnegative()
        .describe("Retries of a transient model or external-tool failure"),
      baseMs: z
        .number()
        .positive()
        .describe("First retry delay; doubles each retry, with jitter, at least Retry-After"),
      breakerThreshold: z
        .number()
        .int()
        .positive()
        .describe("Failures in a row that open a dependency's breaker"),
      halfOpenSeconds: z.number().positive().describe("How long an open breaker fails fast before it probes"),
    })
    .describe("Retries and circuit breakers per outside dependency"),
  server: z
    .object({
      rateLimitPerMinute: z
        .number()
        .int()
        .nonnegative()
        .describe("KEEL_RATE_LIMIT: requests one API key may make per minute (0: no limit)"),
      requestTimeoutMs: z
        .number()
        .int()
        .positive()
        .describe("KEEL_REQUEST_TIMEOUT_MS: longest a request other than a stream may take"),
      corsOrigins: z
        .array(z.string())
        .describe("KEEL_CORS_ORIGINS: browser origins allowed to call the API (comma-separated)"),
      graphDefaults: z
        .record(z.string(), z.record(z.string(), z.unknown()))
        .describe(
          "LANGGRAPH_CONFIG: per graph, the configuration (and `context`) its own assistant starts with, as LangGraph's servers read it",
        ),
      testEndpoints: z
        .boolean()
        .describe(
          "KEEL_TEST_ENDPOINTS=1: offer POST /internal/truncate, which empties the API's tables (conformance suites only)",
        ),
    })
    .describe("keel serve"),
  observability: z
    .object({
      exporter: z
        .enum(["none", "otlp", "file", "console"])
        .describe("KEEL_TRACE_EXPORTER; otlp when OTEL_EXPORTER_OTLP_ENDPOINT is set, else none"),
      otlpEndpoint: z
        .string()
        .optional()
        .describe(
          "OTLP/HTTP traces URL: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, or OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces",
        ),
      traceFile: z.string().optional().describe("KEEL_TRACE_FILE: where the file exporter appends OTLP/JSON"),
      serviceName: z.string().describe("OTEL_SERVICE_NAME"),
      exportTimeoutMs: z
        .number()
        .int()
        .positive()
        .describe("KEEL_TRACE_EXPORT_TIMEOUT_MS: longest wait for an export, and for the flush at exit"),
      trajectory: z.boolean().describe("KEEL_TRAJECTORY=off stores only tool calls, not the other steps"),
      retentionDays: z
        .number()
        .int()
        .positive()
        .describe("KEEL_TRAJECTORY_RETENTION_DAYS: steps older than this are pruned"),
      logLevel: z
        .enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"])
        .optional()
        .describe("KEEL_LOG_LEVEL of the structured (pino) log; unset, each command picks (worker: info)"),
      langsmith: z
        .object({
          enabled: z.boolean().describe("LANGSMITH_TRACING=true (with LANGSMITH_API_KEY)"),
          apiKey: z.string().optional().describe("LANGSMITH_API_KEY"),
          endpoint: z.string().optional().describe("LANGSMITH_ENDPOINT"),
          project: z.string().describe("LANGSMITH_PROJECT, default keel"),
          flushMs: z.number().int().positive().describe("KEEL_LANGSMITH_FLUSH_MS: longest flush at exit"),
        })
        .describe("LangSmith tracing through LangChain's own integration (opt-in)"),
    })
    .describe("Traces, the trajectory store and logs"),
});
export type KeelConfig = z.infer<typeof KeelConfig>;

type Env = Record<string, string | undefined>;

function intFrom(env: Env, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) {
    throw new InputError(`${name}=${raw} is not a positive number; unset it or give e.g. ${fallback}.`);
  }
  return value;
}

/**
 * KEEL_DB_POOL_SIZE: at least 2, because migrations hold one connection for their lock while they run on
 * another (a pool of one would wait for itself).
 */
function poolSizeFrom(env: Env): number {
  const size = intFrom(env, "KEEL_DB_POOL_SIZE", 20);
  if (!Number.isInteger(size) || size < 2)
    throw new InputError(
      `KEEL_DB_POOL_SIZE=${env.KEEL_DB_POOL_SIZE} is too small: Keel needs at least 2 connections per process (migrations hold one for their lock while running on another). Give 2 or more, e.g. 20.`,
    );
  return size;
}

/** A comma-separated list of browser origins (scheme, host and port, no path), e.g. https://inbox.example. */
function graphDefaultsFrom(env: Env): Record<string, Record<string, unknown>> {
  const raw = env.LANGGRAPH_CONFIG;
  if (!raw) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (error) {
    throw new InputError(
      `LANGGRAPH_CONFIG is not JSON (${(error as Error).message}); give {"<graph>": {"configurable": {…}}}.`,
    );
  }
  const valid = z.record(z.string(), z.record(z.string(), z.unknown())).safeParse(parsed);
  if (!valid.success)
    throw new InputError(
      'LANGGRAPH_CONFIG must map each graph id to an object: {"<graph>": {"configurable": {…}}}.',
    );
  return valid.data;
}

function originsFrom(env: Env, name: string): string[] {
  const raw = env[name] ?? "";
  const origins = raw
    .split(",")
    .map((o) => o.trim())
    .filter((o) => o !== "");
  for (const origin of origins) {
    if (!URL.canParse(origin) || new URL(origin).origin !== origin.replace(/\/$/, ""))
      throw new InputError(
        `${name}: "${origin}" is not an origin; give scheme, host and port only, comma-separated, e.g. https://inbox.example,http://localhost:3000.`,
      );
  }
  return origins.map((o) => o.replace(/\/$/, ""));
}

function urlFrom(env: Env, name: string, example = "https://chat.example/hooks/ops"): string | undefined {
  const raw = env[name];
  if (raw === undefined || raw === "") return undefined;
  if (!URL.canParse(raw) || !/^https?:$/.test(new URL(raw).protocol)) {
    throw new InputError(`${name}=${raw} is not an http(s) URL; give e.g. ${example}, or unset it.`);
  }
  return raw;
}

const EXPORTERS = ["none", "otlp", "file", "console"] as const;
/** The variables with which LangChain turns its LangSmith tracer on by itself. */
const LANGSMITH_SWITCHES = [
  "LANGSMITH_TRACING",
  "LANGSMITH_TRACING_V2",
  "LANGCHAIN_TRACING_V2",
  "LANGCHAIN_TRACING",
];

/**
 * Makes LangChain's own switch agree with Keel's decision: LangChain reads these variables on every run and would
 * otherwise add a tracer of its own (with unbounded waits) when Keel turned LangSmith off, e.g. for a missing key.
 */
export function alignLangSmithSwitch(enabled: boolean, env: Env = process.env): void {
  if (enabled) return;
  for (const name of LANGSMITH_SWITCHES) if (env[name] !== undefined) env[name] = "false";
}
const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

function oneOf<T extends string>(env: Env, name: string, allowed: readonly T[], fallback: T): T {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  if (!(allowed as readonly string[]).includes(raw)) {
    throw new InputError(`${name}=${raw} is not one of ${allowed.join(", ")}; unset it or pick one.`);
  }
  return raw as T;
}

function observabilityFrom(env: Env, cwd: string): KeelConfig["observability"] {
  const nonEmpty = (name: string) => (env[name] && env[name] !== "" ? env[name] : undefined);
  const tracesUrl = urlFrom(env, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://localhost:4318/v1/traces");
  const baseUrl = urlFrom(env, "OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318");
  const otlpEndpoint = tracesUrl ?? (baseUrl ? `${baseUrl.replace(/\/+$/, "")}/v1/traces` : undefined);
  const exporter = oneOf(env, "KEEL_TRACE_EXPORTER", EXPORTERS, otlpEndpoint ? "otlp" : "none");
  if (exporter === "otlp" && !otlpEndpoint) {
    throw new InputError(
      "KEEL_TRACE_EXPORTER=otlp needs OTEL_EXPORTER_OTLP_ENDPOINT (e.g. http://localhost:4318); set it, or pick file or none.",
    );
  }
  const traceFile = nonEmpty("KEEL_TRACE_FILE");
  if (exporter === "file" && !traceFile) {
    throw new InputError("KEEL_TRACE_EXPORTER=file needs KEEL_TRACE_FILE, the file to append spans to.");
  }
  const tracing = LANGSMITH_SWITCHES.some((name) => env[name]?.toLowerCase() === "true") ? "true" : "";
  return {
    exporter,
    otlpEndpoint,
    traceFile: traceFile ? path.resolve(cwd, traceFile) : undefined,
    serviceName: nonEmpty("OTEL_SERVICE_NAME") ?? "keel",
    exportTimeoutMs: intFrom(env, "KEEL_TRACE_EXPORT_TIMEOUT_MS", 2000),
    trajectory: !["off", "false", "0"].includes((nonEmpty("KEEL_TRAJECTORY") ?? "on").toLowerCase()),
    retentionDays: intFrom(env, "KEEL_TRAJECTORY_RETENTION_DAYS", 30),
    logLevel: env.KEEL_LOG_LEVEL ? oneOf(env, "KEEL_LOG_LEVEL", LOG_LEVELS, "info") : undefined,
    langsmith: {
      enabled: tracing === "true",
      apiKey: nonEmpty("LANGSMITH_API_KEY") ?? nonEmpty("LANGCHAIN_API_KEY"),
      endpoint:
        urlFrom(env, "LANGSMITH_ENDPOINT", "https://api.smith.langchain.com") ??
        urlFrom(env, "LANGCHAIN_ENDPOINT", "https://api.smith.langchain.com"),
      project: nonEmpty("LANGSMITH_PROJECT") ?? nonEmpty("LANGCHAIN_PROJECT") ?? "keel",
      flushMs: intFrom(env, "KEEL_LANGSMITH_FLUSH_MS", 2000),
    },
  };
}

/** Reads Keel's configuration from the environment (defaults to `process.env`). */
/**
 * `keel` when the shell that started this process can run it by that name; `npx keel` otherwise, and whenever
 * npm started it (npm and npx put the project's bin folder on PATH only for the processes they start).
 */
export function commandName(env: Env = process.env): string {
  if (env.npm_lifecycle_event || env.npm_command === "exec") return "npx keel";
  const onPath = (env.PATH ?? "")
    .split(path.delimiter)
    .some((dir) => dir !== "" && fs.existsSync(path.join(dir, "keel")));
  return onPath ? "keel" : "npx keel";
}

export function loadConfig(env: Env = process.env, cwd: string = process.cwd()): KeelConfig {
  const nonEmpty = (name: string) => (env[name] && env[name] !== "" ? env[name] : undefined);
  return KeelConfig.parse({
    databaseUrl: nonEmpty("DATABASE_URL"),
    dataDir: path.resolve(cwd, nonEmpty("KEEL_DATA_DIR") ?? ".keel"),
    databasePoolSize: poolSizeFrom(env),
    policyFile: nonEmpty("KEEL_POLICY_FILE")
      ? path.resolve(cwd, env.KEEL_POLICY_FILE!)
      : fs.existsSync(path.join(cwd, "keel.policy.yaml"))
        ? path.join(cwd, "keel.policy.yaml")
        : undefined,
    webhookUrl: urlFrom(env, "KEEL_WEBHOOK_URL"),
    user: nonEmpty("KEEL_USER") ?? nonEmpty("USER") ?? "cli-user",
    command: commandName(env),
    failpoint: nonEmpty("KEEL_FAILPOINT"),
    model: {
      apiKey: nonEmpty("OPENAI_API_KEY"),
      baseURL: nonEmpty("OPENAI_BASE_URL"),
      name:
        nonEmpty("KEEL_MODEL") ??
        (nonEmpty("OPENAI_API_KEY") || nonEmpty("OPENAI_BASE_URL") ? "gpt-4o-mini" : "offline"),
      maxTokens: intFrom(env, "KEEL_MAX_TOKENS", 4096),
    },
    limits: {
      maxRequestChars: intFrom(env, "KEEL_MAX_REQUEST_CHARS", 4000),
      maxPlanTasks: intFrom(env, "KEEL_MAX_PLAN_TASKS", 8),
      maxAgentSteps: intFrom(env, "KEEL_MAX_AGENT_STEPS", 8),
      defaultTaskTimeoutSeconds: intFrom(env, "KEEL_TASK_TIMEOUT_SECONDS", 120),
      sqlRowLimit: intFrom(env, "KEEL_SQL_ROW_LIMIT", 50),
      sqlTimeoutMs: intFrom(env, "KEEL_SQL_TIMEOUT_MS", 2000),
      sandboxTimeoutMs: intFrom(env, "KEEL_SANDBOX_TIMEOUT_MS", 1000),
      sandboxMemoryBytes: intFrom(env, "KEEL_SANDBOX_MEMORY_BYTES", 32 * 1024 * 1024),
      modelTimeoutMs: intFrom(env, "KEEL_MODEL_TIMEOUT_MS", 60_000),
    },
    runtime: {
      leaseSeconds: intFrom(env, "KEEL_LEASE_SECONDS", 30),
      idempotencyTtlHours: intFrom(env, "KEEL_IDEMPOTENCY_TTL_HOURS", 24),
      approvalTtlSeconds: intFrom(env, "KEEL_APPROVAL_TTL_SECONDS", 24 * 3600),
      requestDeadlineSeconds: intFrom(env, "KEEL_REQUEST_DEADLINE_SECONDS", 900),
      maxRetries: env.KEEL_MAX_RETRIES === "0" ? 0 : intFrom(env, "KEEL_MAX_RETRIES", 2),
      retryBaseMs: intFrom(env, "KEEL_RETRY_BASE_MS", 1000),
      maxCrashes: intFrom(env, "KEEL_MAX_CRASHES", 10),
      purgeAfterDays: nonEmpty("KEEL_PURGE_AFTER_DAYS")
        ? intFrom(env, "KEEL_PURGE_AFTER_DAYS", 30)
        : undefined,
      runEventsRetentionHours: intFrom(env, "KEEL_RUN_EVENTS_RETENTION_HOURS", 24),
    },
    resilience: {
      retries: env.KEEL_DEPENDENCY_RETRIES === "0" ? 0 : intFrom(env, "KEEL_DEPENDENCY_RETRIES", 3),
      baseMs: intFrom(env, "KEEL_DEPENDENCY_RETRY_BASE_MS", 500),
      breakerThreshold: intFrom(env, "KEEL_BREAKER_THRESHOLD", 5),
      halfOpenSeconds: intFrom(env, "KEEL_BREAKER_HALF_OPEN_SECONDS", 30),
    },
    server: {
      rateLimitPerMinute: env.KEEL_RATE_LIMIT === "0" ? 0 : intFrom(env, "KEEL_RATE_LIMIT", 600),
      requestTimeoutMs: intFrom(env, "KEEL_REQUEST_TIMEOUT_MS", 30_000),
      corsOrigins: originsFrom(env, "KEEL_CORS_ORIGINS"),
      graphDefaults: graphDefaultsFrom(env),
      testEndpoints: env.KEEL_TEST_ENDPOINTS === "1",
    },
    observability: observabilityFrom(env, cwd),
  });
}

/** Whether Studio/dev tooling should print verbose progress; read here so other modules need not. */
export function isInteractiveTerminal(): boolean {
  return Boolean(process.stdin.isTTY && process.stdout.isTTY);
}
