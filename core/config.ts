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
  failpoint: z
    .string()
    .optional()
    .describe("KEEL_FAILPOINT: a named point where the process kills itself (crash-safety tests only)"),
  model: z
    .object({
      apiKey: z.string().optional().describe("OPENAI_API_KEY"),
      baseURL: z.string().optional().describe("OPENAI_BASE_URL of any OpenAI-compatible server"),
      name: z.string().describe("KEEL_MODEL: model name, or 'offline'"),
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

function urlFrom(env: Env, name: string): string | undefined {
  const raw = env[name];
  if (raw === undefined || raw === "") return undefined;
  if (!URL.canParse(raw) || !/^https?:$/.test(new URL(raw).protocol)) {
    throw new InputError(
      `${name}=${raw} is not an http(s) URL; give e.g. https://chat.example/hooks/ops, or unset it.`,
    );
  }
  return raw;
}

/** Reads Keel's configuration from the environment (defaults to `process.env`). */
export function loadConfig(env: Env = process.env, cwd: string = process.cwd()): KeelConfig {
  const nonEmpty = (name: string) => (env[name] && env[name] !== "" ? env[name] : undefined);
  return KeelConfig.parse({
    databaseUrl: nonEmpty("DATABASE_URL"),
    dataDir: path.resolve(cwd, nonEmpty("KEEL_DATA_DIR") ?? ".keel"),
    databasePoolSize: intFrom(env, "KEEL_DB_POOL_SIZE", 20),
    policyFile: nonEmpty("KEEL_POLICY_FILE")
      ? path.resolve(cwd, env.KEEL_POLICY_FILE!)
      : fs.existsSync(path.join(cwd, "keel.policy.yaml"))
        ? path.join(cwd, "keel.policy.yaml")
        : undefined,
    webhookUrl: urlFrom(env, "KEEL_WEBHOOK_URL"),
    user: nonEmpty("KEEL_USER") ?? nonEmpty("USER") ?? "cli-user",
    failpoint: nonEmpty("KEEL_FAILPOINT"),
    model: {
      apiKey: nonEmpty("OPENAI_API_KEY"),
      baseURL: nonEmpty("OPENAI_BASE_URL"),
      name:
        nonEmpty("KEEL_MODEL") ??
        (nonEmpty("OPENAI_API_KEY") || nonEmpty("OPENAI_BASE_URL") ? "gpt-4o-mini" : "offline"),
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
    },
    runtime: {
      leaseSeconds: intFrom(env, "KEEL_LEASE_SECONDS", 30),
      idempotencyTtlHours: intFrom(env, "KEEL_IDEMPOTENCY_TTL_HOURS", 24),
      approvalTtlSeconds: intFrom(env, "KEEL_APPROVAL_TTL_SECONDS", 24 * 3600),
      requestDeadlineSeconds: intFrom(env, "KEEL_REQUEST_DEADLINE_SECONDS", 900),
      maxRetries: env.KEEL_MAX_RETRIES === "0" ? 0 : intFrom(env, "KEEL_MAX_RETRIES", 2),
      retryBaseMs: intFrom(env, "KEEL_RETRY_BASE_MS", 1000),
    },
    resilience: {
      retries: env.KEEL_DEPENDENCY_RETRIES === "0" ? 0 : intFrom(env, "KEEL_DEPENDENCY_RETRIES", 3),
      baseMs: intFrom(env, "KEEL_DEPENDENCY_RETRY_BASE_MS", 500),
      breakerThreshold: intFrom(env, "KEEL_BREAKER_THRESHOLD", 5),
      halfOpenSeconds: intFrom(env, "KEEL_BREAKER_HALF_OPEN_SECONDS", 30),
    },
  });
}

/** Whether Studio/dev tooling should print verbose progress; read here so other modules need not. */
export function isInteractiveTerminal(): boolean {
  return Boolean(process.stdin.isTTY && process.stdout.isTTY);
}
