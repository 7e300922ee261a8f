// The guest side of Keel's code sandbox, run in its own worker thread by sandbox.ts. Plain JavaScript so that a
// thread starts without a TypeScript loader (about 0.1 s instead of 0.3 s).
//
// It runs the program in a QuickJS interpreter compiled to WebAssembly: the language and its standard library
// only, no filesystem, network, process, timers or host objects, because none are passed in. It posts one
// message, `{ type: "started" }`, when the interpreter is ready (the host's wall clock starts then), and one
// result. Memory is capped in here by the WebAssembly memory's maximum and CPU time between instructions; the host's
// wall clock and terminate() are what hold when guest code is inside one long native call.
import { parentPort, workerData } from "node:worker_threads";
import {
  newQuickJSWASMModuleFromVariant,
  newVariant,
  RELEASE_SYNC,
  shouldInterruptAfterDeadline,
} from "quickjs-emscripten";

const MAX_CONSOLE_LINES = 200;
/** The linear memory this QuickJS build starts with (16 MiB), in 64 KiB WebAssembly pages. */
const INITIAL_PAGES = 256;
const PAGE = 65536;

/** @param {import("quickjs-emscripten").QuickJSContext} vm @param {string[]} lines */
function installConsole(vm, lines) {
  const consoleObject = vm.newObject();
  for (const level of ["log", "info", "warn", "error"]) {
    const fn = vm.newFunction(level, (...args) => {
      if (lines.length < MAX_CONSOLE_LINES) {
        lines.push(
          args
            .map((a) => {
              const value = vm.dump(a);
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

/** @param {{ code: string, timeoutMs: number, memoryBytes: number }} input */
async function run({ code, timeoutMs, memoryBytes }) {
  // The guest's memory limit is the WebAssembly memory's own maximum: an allocation past it fails inside QuickJS's
  // allocator, however it is made (QuickJS's own limit only refuses single allocations that are too large in
  // this build, because it cannot measure what it has already allocated).
  const wasmMemory = new WebAssembly.Memory({
    initial: INITIAL_PAGES,
    maximum: INITIAL_PAGES + Math.ceil(memoryBytes / PAGE),
  });
  const QuickJS = await newQuickJSWASMModuleFromVariant(newVariant(RELEASE_SYNC, { wasmMemory }));
  const runtime = QuickJS.newRuntime();
  parentPort.postMessage({ type: "started" });
  runtime.setInterruptHandler(shouldInterruptAfterDeadline(Date.now() + timeoutMs));
  runtime.setMemoryLimit(memoryBytes);
  runtime.setMaxStackSize(1024 * 1024);
  const vm = runtime.newContext();
  /** @type {string[]} */
  const lines = [];
  /** A failed run: a limit it hit (the host words it), or the guest's own error. @param {unknown} raw */
  const failed = (raw) => {
    const message =
      raw && typeof raw === "object" && "message" in raw
        ? `${"name" in raw ? String(raw.name) : "Error"}: ${String(raw.message)}`
        : String(raw);
    if (/interrupted/i.test(message)) return { ok: false, console: lines, stopped: "time" };
    if (/out of memory/i.test(message)) return { ok: false, console: lines, stopped: "memory" };
    return { ok: false, console: lines, error: message };
  };
  try {
    installConsole(vm, lines);
    const evaluated = vm.evalCode(code, "task.js");
    if (evaluated.error) {
      const raw = vm.dump(evaluated.error);
      evaluated.error.dispose();
      return failed(raw);
    }
    // The program may end in a promise (async code): run queued jobs, then read how it settled.
    runtime.executePendingJobs();
    const settled = vm.getPromiseState(evaluated.value);
    try {
      if (settled.type === "pending")
        return {
          ok: false,
          console: lines,
          error: "The program's promise never settled (the sandbox has no timers or I/O).",
        };
      if (settled.type === "rejected") return failed(vm.dump(settled.error));
      const value = vm.dump(settled.value);
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
      // assert. The thread ends with this run, so nothing leaks into the next one; the result stands.
    }
  }
}

parentPort.postMessage({ type: "result", result: await run(workerData) });
