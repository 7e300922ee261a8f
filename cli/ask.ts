import readline from "node:readline/promises";
import type { ApprovalDecision } from "../graphs/approval.js";
import { describeApproval, type ApprovalView } from "./render.js";

/** Asks a person at the terminal to approve, edit or reject the pending actions. */
export async function askForDecision(
  pending: ApprovalView,
  reviewer: string,
  signal?: AbortSignal,
): Promise<ApprovalDecision> {
  const rl = readline.createInterface({ input: process.stdin, output: process.stdout });
  // Ctrl-C at the prompt reaches the readline interface, not the process: pass it on, so that the command ends.
  rl.on("SIGINT", () => process.emit("SIGINT"));
  const question = (text: string) => rl.question(text, { signal });
  try {
    for (const line of describeApproval(pending)) console.log(line);
    for (;;) {
      const answer = (await question("Approve, edit or reject? [a/e/r] ")).trim().toLowerCase();
      if (answer === "a" || answer === "approve") return { action: "approve", reviewer };
      if (answer === "r" || answer === "reject") {
        const reason = (await question("Reason (optional): ")).trim();
        return { action: "reject", reviewer, ...(reason ? { reason } : {}) };
      }
      if (answer === "e" || answer === "edit") {
        const raw = await question('Changed arguments as JSON, e.g. {"subject": "New subject"}: ');
        try {
          const args = JSON.parse(raw) as unknown;
          if (args && typeof args === "object" && !Array.isArray(args)) {
            return { action: "edit", reviewer, args: args as Record<string, unknown> };
          }
          console.log("That is not a JSON object; try again.");
        } catch (error) {
          console.log(`That is not valid JSON (${(error as Error).message}); try again.`);
        }
        continue;
      }
      console.log("Please answer a (approve), e (edit) or r (reject).");
    }
  } finally {
    rl.close();
  }
}
