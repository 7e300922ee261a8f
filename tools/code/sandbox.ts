import { Worker } from "node:worker_threads";

export interface SandboxLimits {
  timeoutMs: number;
  memoryBytes: number;
  signal?: AbortSignal;
}

export interface SandboxResult {
  ok: boolean;
  /** The value of the last expression, as JSON-compatible data. */
  result?: unknown;
  console: string[];
  error?: string;
}

/** How long past its CPU limit a guest may run before its thread is terminated from outside. */
export const WALL_MARGIN_MS = 250;
/** How long a thread may take to load the interpreter before the run counts as failed (a loaded machine). */
const STARTUP_LIMIT_MS = 15_000;
const GUEST = new URL("./guest.mjs", import.meta.url);
const MB = 1024 * 1024;

type Limit = "time" | "memory";
/** What the guest posts: that it started, then how the run ended (a limit it hit is worded here). */
type GuestMessage =
  | { type: "started" }
  | { type: "result"; result: SandboxResult | { ok: false; console: string[]; stopped: Limit } };

/**
 * Runs JavaScript in a QuickJS interpreter (see guest.mjs) in a worker thread of its own, so that the worker's
 * event loop never waits for guest code. Limits hold from outside: the thread is terminated when the run passes
 * its time limit by WALL_MARGIN_MS (even inside one long native call, where QuickJS's own interrupt cannot
 * fire), at once when `signal` aborts, and V8's resource limits cap the thread's own heap. A guest that crashes
 * its interpreter or its thread ends this run with a named error; the process goes on.
 */
export function runInSandbox(
  code: string,
  limits: SandboxLimits,
  /** The guest module; tests pass guests that crash the way a broken interpreter does. */
  guest: URL = GUEST,
): Promise<SandboxResult> {
  const cancelled = (): SandboxResult => ({ ok: false, console: [], error: "Execution was cancelled." });
  if (limits.signal?.aborted) return Promise.resolve(cancelled());
  const stopped = (limit: Limit, console: string[] = []): SandboxResult => ({
    ok: false,
    console,
    error:
      limit === "time"
        ? `Execution stopped: the code ran longer than ${limits.timeoutMs} ms (an endless loop?).`
        : `Execution stopped: the code used more than ${limits.memoryBytes} bytes of memory.`,
  });
  return new Promise((resolve) => {
    const worker = new Worker(guest, {
      workerData: { code, timeoutMs: limits.timeoutMs, memoryBytes: limits.memoryBytes },
      resourceLimits: {
        maxOldGenerationSizeMb: 64 + Math.ceil(limits.memoryBytes / MB),
        maxYoungGenerationSizeMb: 16,
        stackSizeMb: 4,
      },
      // What the interpreter prints when it aborts is kept for the error, not written to the worker's output.
      stdout: true,
      stderr: true,
    });
    let stderr = "";
    worker.stderr.on("data", (chunk: Buffer) => {
      if (stderr.length < 2000) stderr += chunk.toString("utf8");
    });
    worker.stdout.resume();
    let done = false;
    const finish = (result: SandboxResult) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      limits.signal?.removeEventListener("abort", onAbort);
      void worker.terminate();
      resolve(result);
    };
    const onAbort = () => finish(cancelled());
    limits.signal?.addEventListener("abort", onAbort, { once: true });
    let timer = setTimeout(
      () => finish({ ok: false, console: [], error: "The sandbox did not start in time." }),
      STARTUP_LIMIT_MS,
    );
    worker.on("message", (message: GuestMessage) => {
      if (message.type === "started") {
        clearTimeout(timer);
        timer = setTimeout(() => finish(stopped("time")), limits.timeoutMs + WALL_MARGIN_MS);
      } else if ("stopped" in message.result) finish(stopped(message.result.stopped, message.result.console));
      else finish(message.result);
    });
    worker.on("error", (error: Error & { code?: string }) => {
      if (error.code === "ERR_WORKER_OUT_OF_MEMORY") return finish(stopped("memory"));
      finish({ ok: false, console: [], error: `The sandbox crashed: ${crashReason(stderr, error)}` });
    });
    worker.on("exit", (exitCode) => {
      finish({
        ok: false,
        console: [],
        error: `The sandbox crashed: ${crashReason(stderr)} (exit code ${exitCode})`,
      });
    });
  });
}

function crashReason(stderr: string, error?: Error): string {
  const printed = stderr.trim().split("\n").at(-1)?.trim();
  return printed || error?.message || "the guest thread ended without a result";
}
