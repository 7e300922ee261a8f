import fs from "node:fs";
import { loadConfig } from "../core/config.js";
import { observability, startObservability } from "../observability/index.js";
import { exitCodeFor, isKeelError, WorkerStoppingError } from "../core/errors.js";
import { buildProgram } from "./program.js";

// Output piped into a reader that stops early (keel trace … | head) ends the command quietly, not with EPIPE.
for (const stream of [process.stdout, process.stderr]) {
  stream.on("error", (error: NodeJS.ErrnoException) => {
    if (error.code !== "EPIPE") throw error;
    process.exit(process.exitCode ?? 0);
  });
}

// A run this process stopped on purpose (Ctrl-C, SIGTERM: its worker gives the task back) can leave a graph task's
// promise rejecting with WorkerStoppingError after the run itself has settled; that is the stop, not a crash.
// Any other unhandled rejection still ends the process as before.
process.on("unhandledRejection", (reason) => {
  if (reason instanceof WorkerStoppingError) return;
  throw reason;
});

const { version } = JSON.parse(fs.readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
  version: string;
};

const program = buildProgram(version);

// Tracing starts before a command runs (so its first span has a provider) and is flushed, within a bound, after.
program.hook("preAction", () => {
  startObservability(loadConfig());
});

try {
  await program.parseAsync(process.argv);
} catch (error) {
  const commanderError = error as { code?: string; exitCode?: number };
  if (commanderError.code?.startsWith("commander.")) {
    // commander already printed the message; help and version are not errors
    process.exitCode =
      commanderError.code === "commander.helpDisplayed" || commanderError.code === "commander.version"
        ? 0
        : 2;
  } else {
    console.error(
      isKeelError(error)
        ? `keel: ${error.name}: ${error.message}`
        : `keel: ${(error as Error).stack ?? String(error)}`,
    );
    process.exitCode = exitCodeFor(error);
  }
}
const { langsmith } = observability();
await observability().shutdown();
if (langsmith.enabled) {
  // What could reach LangSmith within the flush bound has been sent. Its client may still hold requests to an
  // endpoint that does not answer (each up to its timeout, one after another): end now, once stdout is out.
  await new Promise<void>((resolve) => process.stdout.write("", () => resolve()));
  process.exit();
}
