import { Command, InvalidArgumentError, Option } from "commander";
import { loadConfig } from "../core/config.js";
import { exitCodeFor, isKeelError } from "../core/errors.js";
import { SAMPLES } from "../evals/samples.js";
import { resumeCommand, runCommand, type ResumeOptions, type RunOptions } from "./run.js";

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError("expected a whole number from 1 up");
  return n;
}

const program = new Command("keel")
  .description("Keel: a multi-agent orchestrator for agent work that must be reliable.")
  .showHelpAfterError("(run keel --help for usage)")
  .exitOverride();

program
  .command("run")
  .description("Run a request end to end: plan, sub-agents, approvals, answer.")
  .argument("[request]", "what you want done, in words")
  .addOption(
    new Option(
      "--sample <n>",
      `run bundled sample request n (1-${SAMPLES.length}; see keel samples)`,
    ).argParser(positiveInt),
  )
  .option("--no-input", "never prompt: stop at an approval and print how to resume")
  .option("--json", "print one JSON object (thread id, status, plan, results, answer, pending approval)")
  .option("--thread-id <id>", "use this thread id instead of a new one")
  .option("--reviewer <name>", "name recorded with decisions made at the prompt", "cli-user")
  .addHelpText(
    "after",
    `
Exit codes: 0 done, 1 failed, 2 bad input, 3 waiting for approval.

Examples:
  keel run "Which 5 customers generated the most revenue in 2025?"
  keel run --sample 1
  keel run --no-input --json "Email ops@harbor.example that the drill moves to Friday"`,
  )
  .action(async (request: string | undefined, opts: RunOptions) => {
    process.exitCode = await runCommand(loadConfig(), request, opts);
  });

program
  .command("resume")
  .description("Continue a run that waits for approval, from its checkpoint (in any process).")
  .argument("<thread-id>", "the thread id printed by keel run")
  .option("--approve", "approve the pending action(s)")
  .option("--reject", "reject the pending action(s)")
  .option("--edit <json>", "approve with changed arguments, as a JSON object")
  .option("--reason <text>", "why (shown to the agent on reject)")
  .option("--reviewer <name>", "who decides", "cli-user")
  .option("--no-input", "never prompt at a further approval")
  .option("--json", "print one JSON object")
  .addHelpText("after", "\nExit codes: 0 done, 1 failed, 2 bad input, 3 waiting for approval.")
  .action(async (threadId: string, opts: ResumeOptions) => {
    process.exitCode = await resumeCommand(loadConfig(), threadId, opts);
  });

program
  .command("samples")
  .description("List the bundled sample requests.")
  .option("--json", "print them as JSON")
  .action((opts: { json?: boolean }) => {
    if (opts.json) {
      console.log(JSON.stringify(SAMPLES, null, 2));
      return;
    }
    for (const s of SAMPLES)
      console.log(`${String(s.id).padStart(2)}. [${s.agents.join(", ")}] ${s.request}`);
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
