import path from "node:path";
import { Command, InvalidArgumentError, Option } from "commander";
import { loadConfig } from "../core/config.js";
import { SAMPLES } from "../evals/samples.js";
import { DEFAULT_QUEUE, QUEUE_NAME } from "../runtime/queue.js";
import { TASK_STATUSES, type TaskStatus } from "../runtime/task/rules.js";
import { batchCommand, type BatchOptions } from "./batch.js";
import { parseSince } from "./common.js";
import { evalCommand, type EvalOptions } from "./eval.js";
import { serveCommand, type ServeOptions } from "./serve.js";
import { keysCreateCommand, keysListCommand, keysRevokeCommand } from "./keys.js";
import { ROLES, type Role } from "../server/access.js";
import { sloCommand } from "./slo.js";
import { shadowReportCommand, shadowStartCommand, shadowStopCommand } from "./shadows.js";
import {
  rolloutAnalyzeCommand,
  rolloutChangeCommand,
  rolloutStartCommand,
  rolloutStatusCommand,
} from "./rollouts.js";
import {
  releaseCreateCommand,
  releaseDiffCommand,
  releaseListCommand,
  releaseShowCommand,
} from "./releases.js";
import { pruneTracesCommand, traceCommand } from "./trace.js";
import { overviewCommand, pruneCheckpointsCommand } from "./prune.js";
import { resumeCommand, runCommand, type ResumeOptions, type RunOptions } from "./run.js";
import {
  approvalsCommand,
  cancelCommand,
  decideCommand,
  listCommand,
  purgeCommand,
  type PurgeOptions,
  retryCommand,
  statusCommand,
  submitCommand,
  type SubmitOptions,
  watchCommand,
  workerCommand,
} from "./tasks.js";

/** Keel's own golden dataset, wherever keel is run from (relative when it is under the working folder). */
const GOLDEN = ((file) => {
  const relative = path.relative(process.cwd(), file);
  return relative.startsWith("..") ? file : relative;
})(path.resolve(import.meta.dirname, "../evals/datasets/golden.jsonl"));

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError("expected a whole number from 1 up");
  return n;
}

function portNumber(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new InvalidArgumentError("expected a port from 0 to 65535");
  return n;
}

function queueNames(value: string, previous: string[] = []): string[] {
  const names = value.split(",").map((v) => v.trim());
  for (const name of names)
    if (!QUEUE_NAME.test(name))
      throw new InvalidArgumentError(
        `"${name}" is not a queue name: letters, digits, _ . - (up to 63), starting with a letter or digit`,
      );
  return [...previous, ...names];
}

function workflowName(value: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(value))
    throw new InvalidArgumentError("letters, digits, _ . - (up to 63), starting with a letter or digit");
  return value;
}

/**
 * The `keel` command line: every command, its options and their parsers. Building it runs nothing; main.ts parses
 * `process.argv` with it, and the fuzz tests parse arbitrary arguments with it (stopping before any action).
 */
export function buildProgram(version: string): Command {
  const program = new Command("keel")
    .description("Keel: a multi-agent orchestrator for agent work that must be reliable.")
    .version(version, "-V, --version", "print Keel's version")
    .showHelpAfterError("(run keel --help for usage)")
    .exitOverride();

  const since = (value: string) => {
    try {
      return parseSince(value);
    } catch (error) {
      throw new InvalidArgumentError((error as Error).message);
    }
  };
  const status = (value: string) => {
    if (!(TASK_STATUSES as readonly string[]).includes(value))
      throw new InvalidArgumentError(`one of ${TASK_STATUSES.join(", ")}`);
    return value as TaskStatus;
  };
  const EXIT_CODES = "\nExit codes: 0 done, 1 failed, 2 bad input, 3 waiting for approval.";

  program
    .command("run")
    .description(
      "Run a request end to end as a task, driven by a worker in this process: plan, sub-agents, approvals, answer.",
    )
    .argument("[request]", "what you want done, in words")
    .addOption(
      new Option(
        "--sample <n>",
        `run bundled sample request n (1-${SAMPLES.length}; see keel samples)`,
      ).argParser(positiveInt),
    )
    .option("--no-input", "never prompt: stop at an approval and print how to decide")
    .option("--json", "print one JSON object (task id, status, plan, results, answer, pending approvals)")
    .option("--idempotency-key <key>", "the same key and request return the task made the first time")
    .option(
      "--workflow <name>",
      "the workflow the task belongs to, for its SLO targets (default: default)",
      workflowName,
    )
    .option(
      "--reviewer <name>",
      "name recorded with decisions made at the prompt (default KEEL_USER or USER)",
    )
    .option(
      "--as <name>",
      "who submits the request (default KEEL_USER or USER); a sync approval needs someone else",
    )
    .addHelpText(
      "after",
      `${EXIT_CODES}

  Examples:
    keel run "Which 5 customers generated the most revenue in 2025?"
    keel run --sample 1
    keel run --no-input --json "Email ops@harbor.example that the drill moves to Friday"`,
    )
    .action(async (request: string | undefined, opts: RunOptions) => {
      const config = loadConfig();
      process.exitCode = await runCommand(config, request, {
        ...opts,
        reviewer: opts.reviewer ?? config.user,
      });
    });

  program
    .command("resume")
    .description("Decide every pending approval of a task the same way, then drive it on in this process.")
    .argument("<task-id>", "the task (thread) id printed by keel run")
    .option("--approve", "approve the pending action(s)")
    .option("--reject", "reject the pending action(s)")
    .option("--edit <json>", "approve with changed arguments, as a JSON object")
    .option("--reason <text>", "why (shown to the agent on reject)")
    .option("--reviewer <name>", "who decides (default KEEL_USER or USER)")
    .option(
      "--confirm <tools>",
      "for a sync approval: type the held tool names, as keel approvals shows them",
    )
    .option("--no-input", "never prompt at a further approval")
    .option("--json", "print one JSON object")
    .addHelpText("after", EXIT_CODES)
    .action(async (taskId: string, opts: ResumeOptions) => {
      const config = loadConfig();
      process.exitCode = await resumeCommand(config, taskId, {
        ...opts,
        reviewer: opts.reviewer ?? config.user,
      });
    });

  program
    .command("submit")
    .description("Queue a request as a durable task and print its id; a keel worker runs it.")
    .argument("<request>", "what you want done, in words")
    .option(
      "--idempotency-key <key>",
      "same key + same request -> the same task; same key + another request -> error",
    )
    .option(
      "--max-retries <n>",
      "retries after a failed attempt (default KEEL_MAX_RETRIES)",
      (v) => positiveInt(String(Number(v) + 1)) - 1,
    )
    .option("--json", "print { task_id, created, status }")
    .option(
      "--workflow <name>",
      "the workflow the task belongs to, for its SLO targets (default: default)",
      workflowName,
    )
    .option(
      "--as <name>",
      "who submits the request (default KEEL_USER or USER); a sync approval needs someone else",
    )
    .option(
      "--queue <name>",
      `the queue whose workers may run it (keel worker --queue <name>; default: ${DEFAULT_QUEUE})`,
      (v) => queueNames(v)[0]!,
    )
    .option(
      "--release <release>",
      "run it on this release (NAME for its latest version, NAME@VERSION, or id; default: the configuration of the worker that runs it)",
    )
    .action(async (request: string, opts: SubmitOptions) => {
      process.exitCode = await submitCommand(loadConfig(), request, opts);
    });

  program
    .command("serve")
    .description(
      "Serve Keel's HTTP API (the task and approval API, health, /metrics, /openapi.json) with a worker in the same process. Without API keys it serves this machine only.",
    )
    .addOption(
      new Option("--port <n>", "port to listen on (0: any free port)").argParser(portNumber).default(2024),
    )
    .option(
      "--host <host>",
      "address to bind; beyond loopback (127.0.0.1, ::1, localhost) only once API keys exist",
      "127.0.0.1",
    )
    .option("--no-worker", "serve the API only; run keel worker processes elsewhere on the same database")
    .option("--config <file>", "the langgraph.json whose graphs are served as assistants", "langgraph.json")
    .addOption(
      new Option("--concurrency <n>", "tasks the worker runs at once").argParser(positiveInt).default(4),
    )
    .action(async (opts: ServeOptions) => {
      process.exitCode = await serveCommand(loadConfig(), version, opts);
    });

  const keys = program
    .command("keys")
    .description(
      "API keys for keel serve. Once one exists, every request needs one; a server bound beyond loopback needs them.",
    );
  keys
    .command("create")
    .description(
      "Make a key and print it once (only its hash is kept). submitter: submit and follow its own tasks; reviewer: decide approvals and read tasks; admin: everything.",
    )
    .addOption(new Option("--role <role>", "what the key may do").choices(ROLES).makeOptionMandatory())
    .option(
      "--name <name>",
      "the identity recorded for what the key does (default <role>-<id>); give a person's keys one name",
    )
    .option("--json", "print the key and its id as JSON")
    .action(async (opts: { role: Role; name?: string; json?: boolean }) => {
      process.exitCode = await keysCreateCommand(loadConfig(), opts);
    });
  keys
    .command("list")
    .description(
      "Show the keys in force: id, role, name, when made and last used. Never the keys themselves.",
    )
    .option("--all", "include revoked keys")
    .option("--json", "print a JSON array")
    .action(async (opts: { all?: boolean; json?: boolean }) => {
      process.exitCode = await keysListCommand(loadConfig(), opts);
    });
  keys
    .command("revoke")
    .description("Withdraw a key: requests with it get 401 from then on.")
    .argument("<key-id>", "the id keel keys list shows (the 8 characters after keel_)")
    .option("--json", "print the revoked key's record")
    .action(async (id: string, opts: { json?: boolean }) => {
      process.exitCode = await keysRevokeCommand(loadConfig(), id, opts);
    });

  const release = program
    .command("release")
    .description(
      "Releases: named, immutable, versioned bundles of what changes an agent's behaviour (model, prompts, policy, limits, graph). Every task records the release it ran on.",
    );
  release
    .command("create")
    .description(
      "Make the next version of a release from a release file, or from the current configuration (its model and limits, the policy file in force, the built-in prompts). The same bundle made twice is one version.",
    )
    .argument("<name>", "letters, digits, _ . - (up to 63)")
    .option(
      "--file <file>",
      "a YAML or JSON release file: description, model, prompts, policy or policy_file, limits; what it leaves out comes from the current configuration",
    )
    .option("--description <text>", "one line on what this release changes")
    .option("--json", "print the release as JSON")
    .action(async (name: string, opts: { file?: string; description?: string; json?: boolean }) => {
      process.exitCode = await releaseCreateCommand(loadConfig(), name, opts);
    });
  release
    .command("list")
    .description("Show the releases, newest first, with their model and how many tasks ran on each.")
    .option("--name <name>", "only the versions of this release")
    .option("--json", "print a JSON array")
    .action(async (opts: { name?: string; json?: boolean }) => {
      process.exitCode = await releaseListCommand(loadConfig(), opts);
    });
  release
    .command("show")
    .description("Show one release: its model, policy, limits and prompts.")
    .argument("<release>", "NAME (its latest version), NAME@VERSION, or id")
    .option("--json", "print the release with its whole bundle")
    .action(async (ref: string, opts: { json?: boolean }) => {
      process.exitCode = await releaseShowCommand(loadConfig(), ref, opts);
    });
  release
    .command("diff")
    .description("Show what changes from one release to another, field by field.")
    .argument("<from>", "NAME, NAME@VERSION, or id")
    .argument("<to>", "NAME, NAME@VERSION, or id")
    .option("--json", "print { from, to, changes: [{ path, kind, from, to }] }")
    .action(async (from: string, to: string, opts: { json?: boolean }) => {
      process.exitCode = await releaseDiffCommand(loadConfig(), from, to, opts);
    });

  const rollout = program
    .command("rollout")
    .description(
      "Move a candidate release through steps of traffic (an internal cohort, then 1%, 10%, 50%, 100% by default), each request assigned by a hash of its key so one submitter stays on one release. Every change is an event with its reason.",
    );
  rollout
    .command("start")
    .description("Start a rollout of a candidate release against the baseline (default: the stable release).")
    .argument("<candidate>", "the release to roll out: NAME, NAME@VERSION or id")
    .option(
      "--baseline <release>",
      "the release the rest of the traffic runs on (default: the stable release)",
    )
    .addOption(
      new Option("--key <key>", "what sticks to one release")
        .choices(["submitter", "workflow", "task"])
        .default("submitter"),
    )
    .option(
      "--steps <steps>",
      'the ladder, ";"-separated: percents that rise to 100, optionally a cohort first (e.g. "cohort:alice,bob;1;10;50;100")',
    )
    .option("--cohort <keys>", "an internal cohort before the default 1;10;50;100 (comma-separated keys)")
    .option("--reason <text>", "why, recorded with the start")
    .option("--no-gate", "start without running the golden evals on both releases first")
    .option("--gate-dataset <file>", "the dataset the gate runs (default: Keel's golden dataset)", GOLDEN)
    .option("--gate-filter <tag>", "only the gate dataset's cases with this tag")
    .addOption(
      new Option("--gate-concurrency <n>", "cases the gate runs at once").argParser(positiveInt).default(4),
    )
    .addHelpText(
      "after",
      "\nThe gate runs the golden evals on the baseline, then on the candidate; a regression (a case that passed and\nfails now, a lower pass rate, fewer unsafe writes blocked, cost up) stops the rollout before any traffic: exit 1.",
    )
    .option("--json", "print the rollout as JSON")
    .action(
      async (
        candidate: string,
        opts: {
          baseline?: string;
          key: "submitter" | "workflow" | "task";
          steps?: string;
          cohort?: string;
          reason?: string;
          json?: boolean;
          gate: boolean;
          gateDataset: string;
          gateFilter?: string;
          gateConcurrency: number;
        },
      ) => {
        process.exitCode = await rolloutStartCommand(loadConfig(), candidate, opts);
      },
    );
  rollout
    .command("status")
    .description(
      "Show the rollout in progress (else the latest): its step, its tasks per release, its events.",
    )
    .option("--json", "print it as JSON")
    .action(async (opts: { json?: boolean }) => {
      process.exitCode = await rolloutStatusCommand(loadConfig(), opts);
    });
  rollout
    .command("analyze")
    .description(
      "Judge the step in progress now, as workers do once a minute: too few candidate tasks waits; a breach rolls back; a passing step whose window has run is promoted. Exit 1 when it failed or rolled back.",
    )
    .option("--json", "print the verdict with every check")
    .action(async (opts: { json?: boolean }) => {
      process.exitCode = await rolloutAnalyzeCommand(loadConfig(), opts);
    });
  for (const [change, what] of [
    ["pause", "Stop advancing; assignment stays as it is at this step."],
    ["resume", "Advance again (the step's analysis window starts over)."],
    ["promote", "Move to the next step; from the last, finish: the candidate becomes the stable release."],
    [
      "abort",
      "Roll back: new tasks go to the baseline at once, and queued tasks of the candidate move to it.",
    ],
  ] as const) {
    const command = rollout
      .command(change)
      .description(what)
      .option("--reason <text>", "why, recorded with the change")
      .option("--json", "print the rollout as JSON");
    if (change === "promote") command.option("--full", "go straight to 100% and finish");
    command.action(async (opts: { reason?: string; full?: boolean; json?: boolean }) => {
      process.exitCode = await rolloutChangeCommand(loadConfig(), change, opts);
    });
  }

  const shadow = program
    .command("shadow")
    .description(
      "Dual-run a candidate release beside the primary: sampled requests also run on it with every side-effecting call simulated (decided by its policy and recorded, never carried out; nobody is asked). Shadow tasks run on the queue shadow: keel worker --queue shadow.",
    );
  shadow
    .command("start")
    .argument("<candidate>", "the release to run in shadow: NAME, NAME@VERSION or id")
    .description("Start shadowing a share of new requests with a candidate release.")
    .addOption(
      new Option("--sample <percent>", "the share of new requests shadowed")
        .argParser((v) => {
          const n = Number(v.replace(/%$/, ""));
          if (!(n > 0 && n <= 100)) throw new InvalidArgumentError("a percent above 0 and up to 100");
          return n;
        })
        .default(10),
    )
    .option("--json", "print the shadow as JSON")
    .action(async (candidate: string, opts: { sample: number; json?: boolean }) => {
      process.exitCode = await shadowStartCommand(loadConfig(), candidate, opts);
    });
  shadow
    .command("stop")
    .description("Stop shadowing new requests (shadow tasks already queued still run).")
    .option("--json", "print the shadow as JSON")
    .action(async (opts: { json?: boolean }) => {
      process.exitCode = await shadowStopCommand(loadConfig(), opts);
    });
  shadow
    .command("report")
    .description(
      "The dual-run report: each shadowed request, primary beside shadow (outcome, trajectory match, cost, policy decisions, the effects the shadow would have had), the rates, and the regressions. Exit 1 on a regression.",
    )
    .option("--since <when>", "only requests since a date, or an age like 2h, 7d", since)
    .option("--json", "print the report as JSON")
    .action(async (opts: { since?: Date; json?: boolean }) => {
      process.exitCode = await shadowReportCommand(loadConfig(), opts);
    });

  program
    .command("worker")
    .description(
      "Run queued tasks until stopped (SIGTERM/SIGINT: stop taking work, release what is held, exit). Run as many as you like, anywhere that reaches the database.",
    )
    .addOption(
      new Option("--concurrency <n>", "tasks run at once by this process").argParser(positiveInt).default(4),
    )
    .option(
      "--queue <names>",
      `run only the tasks of these queues (repeat or comma-separate; default: ${DEFAULT_QUEUE}, where keel submit and keel batch --no-workers put tasks)`,
      queueNames,
    )
    .option(
      "--config <file>",
      "the langgraph.json whose graphs this worker runs for keel serve's Agent Server API (default: ./langgraph.json when present)",
    )
    .addHelpText(
      "after",
      "\nkeel run, keel batch and keel eval drive their own tasks in their own process, on a queue of their own; a\nkeel worker never takes those while they follow them, and takes them over when they stop (or crash).",
    )
    .action(async (opts: { concurrency: number; queue?: string[]; config?: string }) => {
      process.exitCode = await workerCommand(loadConfig(), opts);
    });

  program
    .command("status")
    .description(
      "Show a task tree: statuses, attempts, errors, pending approvals, answer. Without a task id: the tasks by status, the checkpoint tables' size and the retention policy.",
    )
    .argument("[task-id]")
    .option("--json", "print one JSON object")
    .action(async (taskId: string | undefined, opts: { json?: boolean }) => {
      process.exitCode = await (taskId === undefined
        ? overviewCommand(loadConfig(), opts)
        : statusCommand(loadConfig(), taskId, opts));
    });

  program
    .command("prune")
    .description(
      "Apply the policy's checkpoint retention now to finished threads that are due: keep only the latest checkpoint (and what it needs) or delete them, per workflow. Workers also do it hourly, in batches. Threads running or waiting for a person are never touched.",
    )
    .option("--dry-run", "show what would be removed and change nothing")
    .addOption(new Option("--limit <n>", "at most this many threads").argParser(positiveInt).default(1000))
    .option("--json", "print the report as JSON")
    .action(async (opts: { dryRun?: boolean; limit: number; json?: boolean }) => {
      process.exitCode = await pruneCheckpointsCommand(loadConfig(), opts);
    });

  program
    .command("list")
    .description("List requests, newest first.")
    .option("--status <status>", `only this status (${TASK_STATUSES.join(", ")})`, status)
    .option("--since <when>", "only since a date, or an age like 30m, 2h, 7d", since)
    .addOption(new Option("--limit <n>", "at most this many").argParser(positiveInt).default(50))
    .option(
      "--workflow <name>",
      "only tasks of this workflow (eval and shadow runs show only with --workflow eval or shadow)",
      workflowName,
    )
    .option("--json", "print a JSON array")
    .action(
      async (opts: {
        status?: TaskStatus;
        since?: Date;
        limit: number;
        workflow?: string;
        json?: boolean;
      }) => {
        process.exitCode = await listCommand(loadConfig(), opts);
      },
    );

  program
    .command("watch")
    .description("Follow a task's events until it is done, failed or cancelled.")
    .argument("<task-id>")
    .option("--json", "one JSON object per event")
    .action(async (taskId: string, opts: { json?: boolean }) => {
      process.exitCode = await watchCommand(loadConfig(), taskId, opts);
    });

  program
    .command("cancel")
    .description(
      "Cancel a task tree: running work is aborted, queued work never starts, pending approvals are withdrawn.",
    )
    .argument("<task-id>")
    .option("--json", "print one JSON object")
    .action(async (taskId: string, opts: { json?: boolean }) => {
      process.exitCode = await cancelCommand(loadConfig(), taskId, opts);
    });

  program
    .command("retry")
    .description("Queue a failed task again by hand; it continues from its last checkpoint.")
    .argument("<task-id>")
    .option("--json", "print one JSON object")
    .action(async (taskId: string, opts: { json?: boolean }) => {
      process.exitCode = await retryCommand(loadConfig(), taskId, opts);
    });

  program
    .command("purge")
    .description(
      "Erase a finished request's stored content: its request, answers, results and checkpoints, and the text of its approvals, messages, effects and trace. Ids, statuses, reviewers, times and costs stay for audit. Workers do it by themselves with KEEL_PURGE_AFTER_DAYS.",
    )
    .argument("[task-id]", "the request (or any task of it) to purge; it must be done, failed or cancelled")
    .addOption(
      new Option(
        "--older-than <days>",
        "instead, purge every finished request that ended this many days ago or more",
      ).argParser(positiveInt),
    )
    .option("--dry-run", "show what would be purged and change nothing")
    .option("--json", "print what was purged as JSON")
    .action(async (taskId: string | undefined, opts: PurgeOptions) => {
      process.exitCode = await purgeCommand(loadConfig(), taskId, opts);
    });

  program
    .command("approvals")
    .description("List actions waiting for a person, with their full context.")
    .option("--all", "include decided, expired and withdrawn ones")
    .option("--json", "print a JSON array")
    .action(async (opts: { all?: boolean; json?: boolean }) => {
      process.exitCode = await approvalsCommand(loadConfig(), opts);
    });

  for (const verb of ["approve", "reject"] as const) {
    const command = program
      .command(verb)
      .description(
        verb === "approve"
          ? "Approve a held action (optionally with edited arguments)."
          : "Reject a held action.",
      )
      .argument("<approval-id>", "from keel approvals")
      .option("--reason <text>", "why")
      .option("--reviewer <name>", "who decides (default KEEL_USER or USER)")
      .option("--json", "print the decided approval");
    if (verb === "approve")
      command.option(
        "--confirm <tools>",
        "for a sync approval: type the held tool names, as keel approvals shows them",
      );
    if (verb === "approve")
      command.option("--edit <json>", "approve with changed arguments, as a JSON object");
    command.action(
      async (
        approvalId: string,
        opts: { edit?: string; reason?: string; reviewer?: string; confirm?: string; json?: boolean },
      ) => {
        const config = loadConfig();
        process.exitCode = await decideCommand(config, approvalId, {
          ...opts,
          reviewer: opts.reviewer ?? config.user,
          approve: verb === "approve",
          reject: verb === "reject",
        });
      },
    );
  }

  program
    .command("batch")
    .description("Run every request of a JSONL file: submit (idempotently), drive, show progress, summarize.")
    .argument(
      "<requests.jsonl>",
      'one JSON object per line: {"request": "…", "id"?: "…", "idempotency_key"?: "…"}',
    )
    .addOption(
      new Option("--concurrency <n>", "tasks run at once by the in-process worker")
        .argParser(positiveInt)
        .default(4),
    )
    .option("--out <file>", "write one result per line (JSONL)")
    .option("--no-workers", "only submit and follow; keel worker processes do the work")
    .option("--json", "print the summary and results as one JSON object")
    .addHelpText(
      "after",
      "\nRe-running the same file redoes nothing that finished: each line's idempotency key comes from its\nidempotency_key, else its id, else its content. Exit codes: 0 all done, 1 some failed, 2 malformed lines, 130 interrupted.",
    )
    .action(async (file: string, opts: BatchOptions) => {
      process.exitCode = await batchCommand(loadConfig(), file, opts);
    });

  program
    .command("trace")
    .description(
      "Show a task tree as a timeline: each agent, model call and tool call with duration, tokens, cost and outcome; handoffs, policy decisions, approvals and who decided, retries, errors.",
    )
    .argument("<task-id>", "the task id (a sub-task id shows its whole tree)")
    .option("--json", "print the trace as one JSON object (task, totals, agents, timeline)")
    .action(async (taskId: string, opts: { json?: boolean }) => {
      process.exitCode = await traceCommand(loadConfig(), taskId, opts);
    });

  program
    .command("prune-traces")
    .description(
      "Delete trajectory steps (and guardrail events) older than the retention period now; workers also do it hourly.",
    )
    .addOption(
      new Option("--older-than <days>", "age in days (default KEEL_TRAJECTORY_RETENTION_DAYS, 30)").argParser(
        positiveInt,
      ),
    )
    .option("--json", "print { removed, older_than_days }")
    .action(async (opts: { olderThan?: number; json?: boolean }) => {
      process.exitCode = await pruneTracesCommand(loadConfig(), opts);
    });

  program
    .command("slo")
    .description(
      "Service-level scorecard over a window: success rate, p95 time to first token and to completion, tool-call error rate, human escalation rate, cost per successful task, each against its target.",
    )
    .option("--since <when>", "start of the window: an age (30m, 24h, 7d) or a date", since, undefined)
    .option("--until <when>", "end of the window (default now)", since)
    .option(
      "--workflow <name>",
      "only tasks of this workflow, against its targets (eval and shadow runs count only with --workflow eval or shadow)",
      workflowName,
    )
    .option(
      "--release <release>",
      "only tasks that ran on this release (NAME, NAME@VERSION or id), against the policy file's targets",
    )
    .option("--json", "print the scorecard as JSON (for dashboards)")
    .addHelpText(
      "after",
      `
  Targets come from the policy file (slo.targets, and slo.workflows.<name>); defaults: success > 95%,
  p95 first token < 2 s, p95 completion < 30 s, tool errors < 2%, escalations < 10%, cost < $0.50 per success.
  Exit codes: 0 every target met (or no data), 1 a target breached, 2 bad input.`,
    )
    .action(
      async (opts: { since?: Date; until?: Date; workflow?: string; release?: string; json?: boolean }) => {
        process.exitCode = await sloCommand(loadConfig(), {
          ...opts,
          since: opts.since ?? parseSince("24h"),
        });
      },
    );

  program
    .command("eval")
    .description(
      "Run a golden dataset through the runtime (approvals answered from each case) and score outcome and trajectory; write results.jsonl, summary.json, report.md and report.html.",
    )
    .option("--dataset <file>", "JSONL dataset (default: Keel's golden dataset)", GOLDEN)
    .option("--filter <tag>", "only the cases with this tag")
    .addOption(new Option("--concurrency <n>", "cases run at once").argParser(positiveInt).default(4))
    .option("--baseline <file>", "compare with this baseline; exit 1 on a regression")
    .option("--save-baseline <file>", "write this run as the baseline")
    .option("--out <dir>", "where the reports go", ".keel/eval")
    .addOption(
      new Option(
        "--latency-tolerance <ratio>",
        "how much slower p95 may be than the baseline (0.5 = +50%)",
      ).argParser((v) => {
        const n = Number(v);
        if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError("expected a number from 0 up");
        return n;
      }),
    )
    .option(
      "--release <release>",
      "run the cases on this release (NAME, NAME@VERSION or id) instead of the configuration",
    )
    .option("--json", "print the summary as JSON")
    .addHelpText(
      "after",
      `
  A regression: a case that passed in the baseline fails, a lower pass rate, fewer unsafe writes blocked, cost up
  more than 10%, or p95 latency up more than the tolerance (and 500 ms).
  Exit codes: 0 no regression, 1 a regression, 2 bad input (a dataset line, an unknown tag, another dataset's baseline).`,
    )
    .action(async (opts: EvalOptions) => {
      process.exitCode = await evalCommand(loadConfig(), opts);
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
  return program;
}
