import { newQuickJSWASMModule, shouldInterruptAfterDeadline, type QuickJSContext } from "quickjs-emscripten";

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

const MAX_CONSOLE_LINES = 200;

function installConsole(vm: QuickJSContext, lines: string[]): void {
  const consoleObject = vm.newObject();
  for (const level of ["log", "info", "warn", "error"]) {
    const fn = vm.newFunction(level, (...args) => {
      if (lines.length < MAX_CONSOLE_LINES) {
        lines.push(
          args
            .map((a) => {
              const value: unknown = vm.dump(a);
              return typeof value === "string" ? value : JSON.stringify(value);
            })
            .join(" "),
        );
      }
    });
    vm.setProp(consoleObject, level, fn);
    fn.dispose();
  }
  vm.setProp(vm.global, "console", consoleObject);
  consoleObject.dispose();
}

/**
 * Runs JavaScript in a QuickJS interpreter compiled to WebAssembly. The guest has the language and its standard
 * library only: no filesystem, network, process, timers or host objects, because none are passed in. CPU time
 * and memory are capped; an abort signal stops it between instructions.
 *
 * Each run gets its own WebAssembly instance. QuickJS's own memory limit only refuses single allocations that
 * are too large in this build (it cannot measure what it has already allocated), so the interrupt handler also
 * watches the instance's linear memory, which only this guest uses.
 */
export async function runInSandbox(code: string, limits: SandboxLimits): Promise<SandboxResult> {
  const QuickJS = await newQuickJSWASMModule();
  const memory = QuickJS.getWasmMemory() as unknown as { buffer: ArrayBuffer };
  const memoryCeiling = memory.buffer.byteLength + limits.memoryBytes;
  let outOfMemory = false;
  const runtime = QuickJS.newRuntime();
  const pastDeadline = shouldInterruptAfterDeadline(Date.now() + limits.timeoutMs);
  runtime.setInterruptHandler((rt) => {
    outOfMemory ||= memory.buffer.byteLength > memoryCeiling;
    return outOfMemory || pastDeadline(rt) || Boolean(limits.signal?.aborted);
  });
  runtime.setMemoryLimit(limits.memoryBytes);
  runtime.setMaxStackSize(1024 * 1024);
  const vm = runtime.newContext();
  const lines: string[] = [];
  try {
    installConsole(vm, lines);
    const evaluated = vm.evalCode(code, "task.js");
    if (evaluated.error) {
      const raw: unknown = vm.dump(evaluated.error);
      evaluated.error.dispose();
      return { ok: false, console: lines, error: describeError(raw) };
    }
    // The program may end in a promise (async code): run queued jobs, then read how it settled.
    runtime.executePendingJobs();
    const settled = vm.getPromiseState(evaluated.value);
    try {
      if (settled.type === "pending") {
        return {
          ok: false,
          console: lines,
          error: "The program's promise never settled (the sandbox has no timers or I/O).",
        };
      }
      if (settled.type === "rejected")
        return { ok: false, console: lines, error: describeError(vm.dump(settled.error)) };
      const value: unknown = vm.dump(settled.value);
      return { ok: true, result: value === undefined ? null : value, console: lines };
    } finally {
      if (settled.type === "rejected") settled.error.dispose();
      if (settled.type === "fulfilled" && !settled.notAPromise) settled.value.dispose();
      evaluated.value.dispose();
    }
  } finally {
    try {
      vm.dispose();
      runtime.dispose();
    } catch {
      // A guest that broke QuickJS's bookkeeping (a stack overflow leaves objects behind) makes disposal
      // assert. The whole WebAssembly instance belongs to this run and is dropped with it, so nothing leaks
      // into the next run; the result already computed stands.
    }
  }

  function describeError(raw: unknown): string {
    const message =
      raw && typeof raw === "object" && "message" in raw
        ? `${(raw as { name?: string }).name ?? "Error"}: ${String(raw.message)}`
        : String(raw);
    if (/interrupted/i.test(message)) {
      if (outOfMemory)
        return `Execution stopped: the code used more than ${limits.memoryBytes} bytes of memory.`;
      return limits.signal?.aborted
        ? "Execution was cancelled."
        : `Execution stopped: the code ran longer than ${limits.timeoutMs} ms (an endless loop?).`;
    }
    if (/out of memory/i.test(message))
      return `Execution stopped: the code used more than ${limits.memoryBytes} bytes of memory.`;
    return message;
  }
}
