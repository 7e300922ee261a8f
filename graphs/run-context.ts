import type { RunnableConfig } from "@langchain/core/runnables";
import { z } from "zod";
import { SystemError } from "../core/errors.js";

/**
 * What Keel carries in a run's `configurable`, next to LangGraph's own keys. Declared once and parsed in one
 * place (`runContext`), so a misspelt key is an error and not a check that silently never runs.
 */
export const KeelRunContext = z
  .object({
    keel_fenced: z
      .boolean()
      .optional()
      .describe("The run is driven by a worker under a lease: every effect must carry its fencing token"),
    keel_fence_token: z
      .string()
      .regex(/^\d+$/)
      .optional()
      .describe("The worker's fencing token; effects commit only while the task still carries it"),
    keel_task_id: z
      .string()
      .uuid()
      .optional()
      .describe(
        "The task whose fencing token guards this run, when it is not the thread itself (a run of the Agent Server API)",
      ),
    keel_attempt: z.number().int().positive().optional().describe("Which attempt of the task this drive is"),
    keel_deadline: z
      .number()
      .optional()
      .describe("When the current AgentTask must stop (epoch ms), from its timeout_seconds"),
    keel_simulate: z
      .boolean()
      .optional()
      .describe(
        "A shadow run: side-effecting calls are decided and recorded, never executed; nobody is asked",
      ),
  })
  .strict();
export type KeelRunContext = z.infer<typeof KeelRunContext>;

/** The run context as nodes and tools use it. */
export interface RunContext {
  /** The request's thread (the root task id), when the run has one. */
  threadId?: string;
  checkpointNs: string;
  attempt?: number;
  deadline?: number;
  /** Present exactly when the run is fenced: a fenced run without its token never gets this far. */
  fenceToken?: string;
  /** The task the fencing token belongs to: the thread's own id unless a run of the Agent Server API carries it. */
  fenceTaskId?: string;
  /** A shadow run: effects are simulated (see KeelRunContext.keel_simulate). */
  simulate?: boolean;
}

/** Keel's keys of a run's `configurable`, for the runner (and tests) to build it. */
export function keelConfigurable(context: KeelRunContext): Record<string, unknown> {
  return KeelRunContext.parse(context);
}

/**
 * Reads the run context from a node's config. Throws when a `keel_*` key is unknown or malformed, or when a
 * fenced run has no fencing token: running on would commit effects that no lease protects.
 */
export function runContext(config: RunnableConfig | undefined): RunContext {
  const configurable = (config?.configurable ?? {}) as Record<string, unknown>;
  const keel = Object.fromEntries(Object.entries(configurable).filter(([key]) => key.startsWith("keel_")));
  const parsed = KeelRunContext.safeParse(keel);
  if (!parsed.success) {
    throw new SystemError(
      "internal",
      `The run's configuration is malformed (${z.prettifyError(parsed.error).replace(/\n/g, " ")}); Keel's keys are ${Object.keys(KeelRunContext.shape).join(", ")}.`,
    );
  }
  const context = parsed.data;
  if (context.keel_fenced && context.keel_fence_token === undefined) {
    throw new SystemError(
      "internal",
      "This run is fenced but carries no fencing token (keel_fence_token); it was stopped before any effect could commit unprotected.",
    );
  }
  const threadId = typeof configurable.thread_id === "string" ? configurable.thread_id : undefined;
  const checkpointNs = typeof configurable.checkpoint_ns === "string" ? configurable.checkpoint_ns : "";
  return {
    threadId,
    checkpointNs,
    attempt: context.keel_attempt,
    deadline: context.keel_deadline,
    fenceToken: context.keel_fence_token,
    fenceTaskId: context.keel_task_id ?? threadId,
    ...(context.keel_simulate ? { simulate: true } : {}),
  };
}
