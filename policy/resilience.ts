import {
  BrokenCircuitError,
  circuitBreaker,
  ConsecutiveBreaker,
  handleWhen,
  retry,
  wrap,
  type IBackoff,
  type IBackoffFactory,
  type IRetryBackoffContext,
} from "cockatiel";
import { DependencyError } from "../core/errors.js";

/** Retry and breaker settings for one dependency (the model endpoint, an external tool). */
export interface ResilienceOptions {
  /** Retries after the first try, for transient errors only. */
  retries: number;
  baseMs: number;
  maxDelayMs: number;
  /** Consecutive failures that open the breaker. */
  breakerThreshold: number;
  /** How long the breaker stays open before it lets one probe through (half-open). */
  halfOpenAfterMs: number;
}

export const DEFAULT_RESILIENCE: ResilienceOptions = {
  retries: 3,
  baseMs: 500,
  maxDelayMs: 30_000,
  breakerThreshold: 5,
  halfOpenAfterMs: 30_000,
};

const TRANSIENT_STATUS = new Set([408, 425, 429, 500, 502, 503, 504]);
const TRANSIENT_CODES = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "ETIMEDOUT",
  "EPIPE",
  "EAI_AGAIN",
  "ENOTFOUND",
  "UND_ERR_SOCKET",
  "UND_ERR_CONNECT_TIMEOUT",
]);

interface ErrorShape {
  status?: number;
  code?: string;
  name?: string;
  transient?: boolean;
  headers?: Headers | Record<string, string | undefined>;
  retryAfterMs?: number;
  cause?: unknown;
}

/** Whether trying again may help: rate limits, server errors, dropped connections; never bad requests. */
export function isTransient(error: unknown): boolean {
  const e = (error ?? {}) as ErrorShape;
  if (e.transient !== undefined) return e.transient;
  if (typeof e.status === "number") return TRANSIENT_STATUS.has(e.status);
  if (e.code && TRANSIENT_CODES.has(e.code)) return true;
  if (e.name === "APIConnectionError" || e.name === "APIConnectionTimeoutError") return true;
  return e.cause !== undefined && e.cause !== error ? isTransient(e.cause) : false;
}

/** The server's Retry-After (seconds or an HTTP date), in ms, when the error carries one. */
export function retryAfterMs(error: unknown, now = Date.now()): number | undefined {
  const e = (error ?? {}) as ErrorShape;
  if (typeof e.retryAfterMs === "number") return e.retryAfterMs;
  const headers = e.headers;
  const raw =
    headers instanceof Headers
      ? headers.get("retry-after")
      : headers && typeof headers === "object"
        ? (headers["retry-after"] ?? headers["Retry-After"])
        : undefined;
  if (!raw) return undefined;
  const seconds = Number(raw);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(raw);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** Exponential backoff with full jitter that waits at least as long as the server's Retry-After. */
class RetryAfterBackoff implements IBackoffFactory<IRetryBackoffContext<unknown>> {
  constructor(
    private readonly options: ResilienceOptions,
    private readonly random: () => number,
  ) {}

  next(context: IRetryBackoffContext<unknown>): IBackoff<IRetryBackoffContext<unknown>> {
    const exp = Math.min(this.options.maxDelayMs, this.options.baseMs * 2 ** (context.attempt - 1));
    const jittered = this.random() * exp;
    const asked = "error" in context.result ? retryAfterMs(context.result.error) : undefined;
    return {
      duration: Math.min(this.options.maxDelayMs, Math.max(jittered, asked ?? 0)),
      next: (ctx) => this.next(ctx),
    };
  }
}

/** Told about each retry of one call, as it starts: which attempt, what failed before, and when. */
export interface ExecuteHooks {
  onRetry?: (retry: { attempt: number; error: unknown; failedAt: number }) => void;
}

/** One dependency's retry and circuit breaker, shared by every call to it in this process. */
export class Dependency {
  private failures = 0;
  private readonly policy;
  private readonly breaker;

  constructor(
    readonly name: string,
    options: Partial<ResilienceOptions> = {},
    random: () => number = Math.random,
  ) {
    const o = { ...DEFAULT_RESILIENCE, ...options };
    const retryPolicy = retry(handleWhen(isTransient), {
      maxAttempts: o.retries,
      backoff: new RetryAfterBackoff(o, random),
    });
    this.breaker = circuitBreaker(handleWhen(isTransient), {
      halfOpenAfter: o.halfOpenAfterMs,
      breaker: new ConsecutiveBreaker(o.breakerThreshold),
    });
    this.policy = wrap(retryPolicy, this.breaker);
  }

  /** "closed", "open", "half-open" or "isolated". */
  get state(): string {
    return ["closed", "open", "half-open", "isolated"][this.breaker.state] ?? "unknown";
  }

  /**
   * Runs `work` with retries and the breaker. A transient failure that outlasts the retries, or an open
   * breaker, becomes a DependencyError that names the dependency and how often it failed in a row.
   */
  async execute<T>(
    work: (signal: AbortSignal) => Promise<T>,
    signal?: AbortSignal,
    hooks: ExecuteHooks = {},
  ): Promise<T> {
    let attempt = 0;
    let last: { error: unknown; at: number } | undefined;
    try {
      const value = await this.policy.execute(async ({ signal: s }) => {
        attempt++;
        if (attempt > 1 && last) hooks.onRetry?.({ attempt, error: last.error, failedAt: last.at });
        try {
          const result = await work(s);
          this.failures = 0;
          return result;
        } catch (error) {
          if (isTransient(error)) this.failures++;
          last = { error, at: Date.now() };
          throw error;
        }
      }, signal);
      return value;
    } catch (error) {
      if (error instanceof BrokenCircuitError) {
        throw new DependencyError(
          this.name,
          this.failures,
          `${this.name} is unavailable: its circuit breaker is open after ${this.failures} failures in a row; calls fail fast until a probe succeeds.`,
          { cause: error },
        );
      }
      if (isTransient(error) && !signal?.aborted) {
        throw new DependencyError(
          this.name,
          this.failures,
          `${this.name} failed ${this.failures} times in a row (last: ${(error as Error).message}); giving up.`,
          { cause: error },
        );
      }
      throw error;
    }
  }
}

/** The dependencies of one process, by name: one breaker each, however many calls share it. */
export class Dependencies {
  private readonly byName = new Map<string, Dependency>();
  constructor(private readonly options: Partial<ResilienceOptions> = {}) {}

  /** Every dependency called so far in this process, with its breaker's state. */
  list(): { name: string; state: string }[] {
    return [...this.byName.values()].map((d) => ({ name: d.name, state: d.state }));
  }

  get(name: string, options: Partial<ResilienceOptions> = {}): Dependency {
    let dependency = this.byName.get(name);
    if (!dependency) {
      dependency = new Dependency(name, { ...this.options, ...options });
      this.byName.set(name, dependency);
    }
    return dependency;
  }
}
