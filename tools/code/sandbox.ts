import { getQuickJS, shouldInterruptAfterDeadline, type QuickJSContext } from "quickjs-emscripten";

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
        lines.push(args.map((a) => {
          const value: unknown = vm.dump(a);
          return typeof value === "string" ? value : JSON.stringify(value);
        }).join(" "));
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
 */
export async function runInSandbox(code: string, limits: SandboxLimits): Promise<SandboxResult> {
  const QuickJS = await getQuickJS();
  const runtime = QuickJS.newRuntime();
  const deadline = Date.now() + limits.timeoutMs;
  const pastDeadline = shouldInterruptAfterDeadline(deadline);
  runtime.setInterruptHandler((rt) => pastDeadline(rt) || Boolean(limits.signal?.aborted));
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
      let message =
        raw && typeof raw === "object" && "message" in raw
          ? `${(raw as { name?: string }).name ?? "Error"}: ${String((raw as { message: unknown }).message)}`
          : String(raw);
      if (/interrupted/i.test(message)) {
        message = limits.signal?.aborted
          ? "Execution was cancelled."
          : `Execution stopped: the code ran longer than ${limits.timeoutMs} ms (an endless loop?).`;
      } else if (/out of memory/i.test(message)) {
        message = `Execution stopped: the code used more than ${limits.memoryBytes} bytes of memory.`;
      }
      return { ok: false, console: lines, error: message };
    }
    const value: unknown = vm.dump(evaluated.value);
    evaluated.value.dispose();
    return { ok: true, result: value === undefined ? null : value, console: lines };
  } finally {
    vm.dispose();
    runtime.dispose();
  }
}
