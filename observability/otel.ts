import fs from "node:fs";
import { context, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { ExportResultCode, type ExportResult } from "@opentelemetry/core";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { JsonTraceSerializer } from "@opentelemetry/otlp-transformer";
import { resourceFromAttributes } from "@opentelemetry/resources";
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  ConsoleSpanExporter,
  type ReadableSpan,
  type SpanExporter,
  type SpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from "@opentelemetry/semantic-conventions";
import type { KeelConfig } from "../core/config.js";

/**
 * Appends each batch of spans to a file as one line of OTLP/JSON (the body an OTLP/HTTP receiver accepts), so a
 * run traced to a file can be replayed into any collector. The SDK ships no file exporter; this is the
 * serializer it ships, plus an append.
 */
class FileSpanExporter implements SpanExporter {
  constructor(private readonly file: string) {}

  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    try {
      const body = Buffer.from(JsonTraceSerializer.serializeRequest(spans) ?? new Uint8Array());
      fs.appendFileSync(this.file, `${body.toString("utf8")}\n`);
      done({ code: ExportResultCode.SUCCESS });
    } catch (error) {
      done({ code: ExportResultCode.FAILED, error: error as Error });
    }
  }

  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}

export interface Tracing {
  /** Whether spans are recorded and exported; off, the OpenTelemetry API stays a no-op. */
  readonly enabled: boolean;
  readonly exporter: KeelConfig["observability"]["exporter"];
  /** Exports what is buffered now. */
  flush(): Promise<void>;
  /** Exports what is buffered, waiting at most `boundMs`: an unreachable collector never holds the process. */
  shutdown(boundMs?: number): Promise<void>;
}

function exporterFor(config: KeelConfig["observability"]): SpanExporter | undefined {
  switch (config.exporter) {
    case "otlp":
      return new OTLPTraceExporter({ url: config.otlpEndpoint, timeoutMillis: config.exportTimeoutMs });
    case "file":
      return new FileSpanExporter(config.traceFile!);
    case "console":
      return new ConsoleSpanExporter();
    case "none":
      return undefined;
  }
}

let active: Tracing | undefined;

/**
 * Starts OpenTelemetry tracing for this process as configured: OTLP/HTTP when an endpoint is set, a file or
 * the console on request, otherwise nothing (no provider is registered, so every span is a no-op).
 * Calling it again returns the tracing already started.
 */
export function startTracing(config: KeelConfig, version = "0.1.0"): Tracing {
  if (active) return active;
  const exporter = exporterFor(config.observability);
  if (!exporter) {
    active = {
      enabled: false,
      exporter: "none",
      flush: () => Promise.resolve(),
      shutdown: () => Promise.resolve(),
    };
    return active;
  }
  const processors: SpanProcessor[] = [
    new BatchSpanProcessor(exporter, {
      scheduledDelayMillis: 500,
      exportTimeoutMillis: config.observability.exportTimeoutMs,
    }),
  ];
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({
      [ATTR_SERVICE_NAME]: config.observability.serviceName,
      [ATTR_SERVICE_VERSION]: version,
      // Which process made a span: one task's trace spans the submitter and every worker that drove it.
      "process.pid": process.pid,
    }),
    spanProcessors: processors,
  });
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  trace.setGlobalTracerProvider(provider);
  let stopped: Promise<void> | undefined;
  active = {
    enabled: true,
    exporter: config.observability.exporter,
    flush: () => provider.forceFlush(),
    shutdown: (boundMs = config.observability.exportTimeoutMs) =>
      (stopped ??= Promise.race([
        provider.shutdown().catch(() => undefined),
        new Promise<void>((resolve) => setTimeout(resolve, boundMs).unref()),
      ])),
  };
  return active;
}

/** Flushes and stops tracing and unregisters it, so that a later startTracing starts afresh (the benchmark). */
export async function stopTracing(): Promise<void> {
  await active?.shutdown();
  active = undefined;
  trace.disable();
  context.disable();
}

/** Flushes buffered spans now (tests and the benchmark read the receiver right after a run). */
export async function flushTracing(): Promise<void> {
  await active?.flush();
}
