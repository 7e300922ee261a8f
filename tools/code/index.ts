import { z } from "zod";
import { defineTool, READ_ONLY } from "../contract.js";
import { runInSandbox } from "./sandbox.js";

export const runJavaScript = defineTool({
  name: "run_javascript",
  description:
    "Run a JavaScript program in an isolated sandbox (no files, network, process or timers; time and memory limits). " +
    "The value of the last expression is returned as `result`; console.log output is returned as `console`.",
  input: z.object({
    code: z.string().min(1).max(20_000).describe("The program; its last expression is the result"),
  }),
  output: z.object({
    ok: z.boolean().describe("False when the program threw or hit a limit"),
    result: z.unknown().optional().describe("Value of the last expression"),
    console: z.array(z.string()).describe("Lines written with console.log"),
    error: z.string().optional().describe("Why the program failed"),
  }),
  ...READ_ONLY,
  retry: { attempts: 1 },
  agents: ["code"],
  timeoutMs: 10_000,
  async run({ code }, ctx) {
    return runInSandbox(code, {
      timeoutMs: Math.max(1, Math.min(ctx.limits.sandboxTimeoutMs, (ctx.deadline ?? Infinity) - Date.now())),
      memoryBytes: ctx.limits.sandboxMemoryBytes,
      signal: ctx.signal,
    });
  },
});

export const CODE_TOOLS = [runJavaScript];
