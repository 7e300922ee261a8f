import {
  context,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Context,
  type Span,
  type TimeInput,
} from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { isKeelError } from "../core/errors.js";
import { redact } from "../policy/pii.js";

/** Keel's own span attributes, beside the OpenTelemetry GenAI ones (`gen_ai.*`). */
export const KEEL = {
  taskId: "keel.task.id",
  parentTaskId: "keel.parent_task.id",
  rootTaskId: "keel.root_task.id",
  agent: "keel.agent",
  attempt: "keel.attempt",
  turn: "keel.turn",
  worker: "keel.worker.id",
  release: "keel.release",
  costUsd: "keel.cost_usd",
  decision: "keel.policy.decision",
  reasons: "keel.policy.reasons",
  guardrailAction: "keel.guardrail.action",
  guardrailReason: "keel.guardrail.reason",
  reviewer: "keel.approval.reviewer",
  approvalMode: "keel.approval.mode",
  dependency: "keel.dependency",
  toolArgs: "keel.tool.arguments",
  toolStatus: "keel.tool.status",
} as const;

const tracer = () => trace.getTracer("keel");

/** A short, low-cardinality class for an error: Keel's code, else the error's name. */
export function errorClass(error: unknown): string {
  if (isKeelError(error)) return error.code;
  if (error instanceof Error) return error.name === "Error" ? "error" : error.name;
  return "error";
}

/** LangGraph's interrupt travels as an exception; it pauses a span's work, it is not a failure. */
function isPause(error: unknown): boolean {
  const name = (error as { name?: string } | undefined)?.name ?? "";
  return name === "GraphInterrupt" || name === "NodeInterrupt" || name === "ParentCommand";
}

export interface SpanOptions {
  kind?: SpanKind;
  startTime?: TimeInput;
  /** The parent, when it is not the active span (a task resumed from its stored trace context). */
  parent?: Context;
}

/**
 * Runs `work` in a new active span: children started inside it nest under it, an error sets the span's status
 * and `error.type` (its message redacted), and the span always ends.
 */
export async function inSpan<T>(
  name: string,
  attributes: Attributes,
  work: (span: Span) => Promise<T>,
  options: SpanOptions = {},
): Promise<T> {
  const parent = options.parent ?? context.active();
  return tracer().startActiveSpan(
    name,
    { attributes, kind: options.kind ?? SpanKind.INTERNAL, startTime: options.startTime },
    parent,
    async (span) => {
      try {
        return await work(span);
      } catch (error) {
        if (isPause(error)) {
          span.setAttribute("keel.interrupted", true);
        } else {
          span.setAttribute("error.type", errorClass(error));
          span.setStatus({ code: SpanStatusCode.ERROR, message: redact((error as Error).message ?? "") });
        }
        throw error;
      } finally {
        span.end();
      }
    },
  );
}

/** A span for something that already happened (an approval wait, a backoff): given start and end times. */
export function recordSpan(
  name: string,
  attributes: Attributes,
  start: TimeInput,
  end: TimeInput,
  options: { parent?: Context; error?: string } = {},
): void {
  const span = tracer().startSpan(name, { attributes, startTime: start }, options.parent ?? context.active());
  if (options.error) {
    span.setAttribute("error.type", options.error);
    span.setStatus({ code: SpanStatusCode.ERROR });
  }
  span.end(end);
}

const propagator = new W3CTraceContextPropagator();

/** The W3C `traceparent` of the active span, to store with a task; undefined when nothing is being traced. */
export function currentTraceparent(ctx: Context = context.active()): string | undefined {
  const carrier: Record<string, string> = {};
  propagator.inject(ctx, carrier, {
    set: (c: Record<string, string>, k: string, v: string) => {
      c[k] = v;
    },
  });
  return carrier.traceparent;
}

/** The context a stored `traceparent` stands for: spans started under it join that trace. */
export function contextFromTraceparent(traceparent: string | null | undefined): Context {
  if (!traceparent) return ROOT_CONTEXT;
  return propagator.extract(
    ROOT_CONTEXT,
    { traceparent },
    {
      get: (c, k) => (c as Record<string, string>)[k],
      keys: (c) => Object.keys(c as object),
    },
  );
}

/** The active context when a span is active, else the one a task's stored trace context stands for. */
export function tracedContext(traceparent: string | null | undefined): Context {
  return trace.getActiveSpan() ? context.active() : contextFromTraceparent(traceparent);
}

/** Trace and span id of the active span, for log lines and trajectory rows; empty when nothing is traced. */
export function activeIds(): { trace_id?: string; span_id?: string } {
  const ctx = trace.getActiveSpan()?.spanContext();
  if (!ctx || !trace.isSpanContextValid(ctx)) return {};
  return { trace_id: ctx.traceId, span_id: ctx.spanId };
}

export { SpanKind };
