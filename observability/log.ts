import { pino, type DestinationStream, type Logger } from "pino";
import type { KeelConfig } from "../core/config.js";
import { redact, redactDeep } from "../policy/pii.js";
import { activeIds } from "./spans.js";

export type { Logger } from "pino";

/** Keys whose values never reach a log line, wherever they sit in the logged object. */
const SECRET_PATHS = [
  "apiKey",
  "api_key",
  "password",
  "token",
  "authorization",
  "*.apiKey",
  "*.api_key",
  "*.password",
  "*.token",
  "*.authorization",
  "headers.authorization",
  "*.headers.authorization",
];

/**
 * Keel's structured log: one JSON object per line on stderr, with the active trace and span id on every line
 * (so a log line leads to its trace), secrets removed by key and personal data redacted by the guardrails'
 * redactor. Callers add `task_id` (and `agent_task_id`) as fields.
 */
export function createLogger(
  config: Pick<KeelConfig["observability"], "logLevel">,
  options: { level?: string; destination?: DestinationStream; name?: string } = {},
): Logger {
  return pino(
    {
      name: options.name ?? "keel",
      level: config.logLevel ?? options.level ?? "info",
      base: { pid: process.pid },
      redact: { paths: SECRET_PATHS, censor: "[secret]" },
      mixin: () => activeIds(),
      formatters: { log: (object) => redactDeep(object) },
      hooks: {
        logMethod(args, method) {
          const cleaned = args.map((a: unknown) => (typeof a === "string" ? redact(a) : a)) as Parameters<
            typeof method
          >;
          method.apply(this, cleaned);
        },
      },
    },
    options.destination ?? pino.destination({ fd: 2, sync: true }),
  );
}

/** A logger that writes nothing: the default for embedded workers whose caller prints its own progress. */
export const silentLogger: Logger = pino({ level: "silent" });
