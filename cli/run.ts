import { randomUUID } from "node:crypto";
import { isInteractiveTerminal, type KeelConfig } from "../core/config.js";
import { exitCodeFor, InputError, isKeelError } from "../core/errors.js";
import { SAMPLES } from "../evals/samples.js";
import type { ApprovalDecision } from "../graphs/approval.js";
import { describeModel } from "../models/index.js";
import { checkRequest } from "../policy/input.js";
import { Runner, type RunOutcome } from "../runtime/runner.js";
import { askForDecision } from "./ask.js";
import { describeApproval, exitCodeForOutcome, outcomeJson, renderEvent, resumeHint } from "./render.js";

interface CommonOptions {
  input: boolean;
  json?: boolean;
  reviewer: string;
}
export interface RunOptions extends CommonOptions {
  sample?: number;
  threadId?: string;
}
export interface ResumeOptions extends CommonOptions {
  approve?: boolean;
  reject?: boolean;
  edit?: string;
  reason?: string;
}

function pickRequest(request: string | undefined, sample: number | undefined): string {
  if (request !== undefined && sample !== undefined)
    throw new InputError("Give either a request or --sample, not both.");
  if (sample !== undefined) {
    const found = SAMPLES.find((s) => s.id === sample);
    if (!found)
      throw new InputError(
        `There is no sample ${sample}; samples are 1-${SAMPLES.length} (keel samples lists them).`,
      );
    return found.request;
  }
  if (request === undefined)
    throw new InputError('Say what you want done: keel run "<request>", or keel run --sample 1.');
  return request;
}

/** Parses --approve/--reject/--edit/--reason into one decision; a malformed combination is bad input. */
export function decisionFromFlags(opts: ResumeOptions): ApprovalDecision {
  if (opts.approve && opts.reject) throw new InputError("Give --approve or --reject, not both.");
  if (opts.reject && opts.edit !== undefined)
    throw new InputError("--edit approves with changes; it cannot go with --reject.");
  if (!opts.approve && !opts.reject && opts.edit === undefined) {
    throw new InputError("Say what to do: --approve, --reject [--reason …] or --edit '<json>'.");
  }
  if (opts.reject)
    return { action: "reject", reviewer: opts.reviewer, ...(opts.reason ? { reason: opts.reason } : {}) };
  if (opts.edit !== undefined) {
    let args: unknown;
    try {
      args = JSON.parse(opts.edit);
    } catch (error) {
      throw new InputError(
        `--edit must be a JSON object, e.g. '{"subject": "New subject"}' (${(error as Error).message}).`,
      );
    }
    if (!args || typeof args !== "object" || Array.isArray(args)) {
      throw new InputError(`--edit must be a JSON object of the arguments to change, got ${opts.edit}.`);
    }
    return {
      action: "edit",
      reviewer: opts.reviewer,
      args: args as Record<string, unknown>,
      ...(opts.reason ? { reason: opts.reason } : {}),
    };
  }
  return { action: "approve", reviewer: opts.reviewer, ...(opts.reason ? { reason: opts.reason } : {}) };
}

/** Drives a run to its end, asking at each approval when a person is at the terminal. */
async function follow(
  runner: Runner,
  first: (
    onEvent: (e: Parameters<typeof renderEvent>[0]) => void,
    signal: AbortSignal,
  ) => Promise<RunOutcome>,
  opts: CommonOptions,
): Promise<number> {
  const say = opts.json ? () => undefined : (line: string) => console.log(line);
  const onEvent = (event: Parameters<typeof renderEvent>[0]) => renderEvent(event, say);
  const controller = new AbortController();
  const onSigint = () => controller.abort(new Error("interrupted"));
  process.once("SIGINT", onSigint);
  try {
    let outcome = await first(onEvent, controller.signal);
    const interactive = opts.input && !opts.json && isInteractiveTerminal();
    while (outcome.status === "waiting_for_approval" && interactive) {
      const pending = outcome.pending[0]!;
      const decision = await askForDecision(pending, opts.reviewer);
      try {
        outcome = await runner.resume(outcome.thread_id, decision, { onEvent, signal: controller.signal });
      } catch (error) {
        if (!(error instanceof InputError)) throw error;
        console.log(`${error.message} Try again.`);
      }
    }
    if (opts.json) {
      console.log(JSON.stringify(outcomeJson(outcome), null, 2));
    } else if (outcome.status === "waiting_for_approval") {
      for (const p of outcome.pending) describeApproval(p).forEach((l) => say(l));
      resumeHint(outcome.thread_id).forEach((l) => say(l));
    } else {
      say("");
      say(outcome.final_answer ?? "(no answer)");
      say("");
      say(`status: ${outcome.status} · thread: ${outcome.thread_id}`);
    }
    return exitCodeForOutcome(outcome);
  } finally {
    process.removeListener("SIGINT", onSigint);
  }
}

async function withRunner(
  config: KeelConfig,
  json: boolean | undefined,
  work: (runner: Runner) => Promise<number>,
): Promise<number> {
  let runner: Runner | undefined;
  try {
    runner = await Runner.open(config);
    return await work(runner);
  } catch (error) {
    const message = isKeelError(error)
      ? `${error.name}: ${error.message}`
      : ((error as Error).stack ?? String(error));
    if (json) {
      const code = isKeelError(error) ? error.code : "internal";
      console.log(
        JSON.stringify(
          {
            status: "error",
            error: { code, name: (error as Error).name, message: (error as Error).message },
          },
          null,
          2,
        ),
      );
    }
    console.error(`keel: ${message}`);
    return exitCodeFor(error);
  } finally {
    await runner?.close();
  }
}

export async function runCommand(
  config: KeelConfig,
  requestArg: string | undefined,
  opts: RunOptions,
): Promise<number> {
  let request: string;
  try {
    request = checkRequest(pickRequest(requestArg, opts.sample), config.limits.maxRequestChars);
  } catch (error) {
    return withRunnerless(error, opts.json);
  }
  const threadId = opts.threadId ?? randomUUID();
  return withRunner(config, opts.json, async (runner) => {
    if (!opts.json)
      console.log(`keel: thread ${threadId} · ${describeModel(config)} · ${runner.db.kind} Postgres`);
    return follow(
      runner,
      (onEvent, signal) =>
        runner.start(request, threadId, config.limits.maxRequestChars, { onEvent, signal }),
      opts,
    );
  });
}

export async function resumeCommand(
  config: KeelConfig,
  threadId: string,
  opts: ResumeOptions,
): Promise<number> {
  let decision: ApprovalDecision;
  try {
    decision = decisionFromFlags(opts);
  } catch (error) {
    return withRunnerless(error, opts.json);
  }
  return withRunner(config, opts.json, (runner) =>
    follow(runner, (onEvent, signal) => runner.resume(threadId, decision, { onEvent, signal }), opts),
  );
}

/** Bad arguments are reported before any database is opened. */
function withRunnerless(error: unknown, json: boolean | undefined): number {
  if (json && isKeelError(error)) {
    console.log(
      JSON.stringify(
        { status: "error", error: { code: error.code, name: error.name, message: error.message } },
        null,
        2,
      ),
    );
  }
  console.error(`keel: ${isKeelError(error) ? `${error.name}: ${error.message}` : String(error)}`);
  return exitCodeFor(error);
}
