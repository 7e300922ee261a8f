import type pg from "pg";
import type { DestinationStream } from "pino";
import type { KeelConfig } from "../core/config.js";
import type { GuardrailEvent } from "../policy/guard.js";
import { redact } from "../policy/pii.js";
import { createLogger, type Logger } from "./log.js";

type Queryable = Pick<pg.ClientBase, "query">;

let log: Logger | undefined;

/** The log that audit failures go to (stderr, warn and up); entry points set its level from their configuration. */
export function configureAuditLog(
  config: Pick<KeelConfig["observability"], "logLevel">,
  destination?: DestinationStream,
): void {
  log = createLogger(config, { level: "warn", name: "keel-audit", destination });
}

function auditLog(): Logger {
  return (log ??= createLogger({ logLevel: undefined }, { level: "warn", name: "keel-audit" }));
}

/** What an audit write was about, for the log line of its failure. */
export interface AuditSubject {
  what: string;
  task_id?: string | null;
  agent_task_id?: string | null;
  tool?: string | null;
}

/**
 * Runs an audit or bookkeeping write whose failure must not stop the work it records (the work already happened
 * or goes on). A failure is never silent: it is logged with what was being written, the task, the tool and the
 * error, and `false` is returned so the caller can say so too.
 */
export async function bestEffort(subject: AuditSubject, write: () => Promise<unknown>): Promise<boolean> {
  try {
    await write();
    return true;
  } catch (error) {
    auditLog().error(
      { ...subject, error: error instanceof Error ? error.message : String(error) },
      `audit write failed: ${subject.what}`,
    );
    return false;
  }
}

/** Records a guardrail verdict (redacted); best effort: the verdict itself has already been applied. */
export async function recordGuardrailEvent(
  db: Queryable | (() => Promise<Queryable>),
  event: GuardrailEvent,
  threadId?: string | null,
): Promise<boolean> {
  return bestEffort({ what: `guardrail event ${event.reason}`, task_id: threadId ?? null }, async () => {
    const client = typeof db === "function" ? await db() : db;
    await client.query(
      "insert into guardrail_events (thread_id, stage, action, reason, detail) values ($1, $2, $3, $4, $5)",
      [threadId ?? null, event.stage, event.action, event.reason, redact(event.detail)],
    );
  });
}
