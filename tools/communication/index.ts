import { z } from "zod";
import { HttpStatusError, ToolCallError } from "../../core/errors.js";
import { defineTool, READ_ONLY } from "../contract.js";

const Message = z.object({
  to: z.email().describe("Recipient e-mail address"),
  subject: z.string().min(1).max(200).describe("Subject line"),
  body: z.string().min(1).max(10_000).describe("Message text"),
});

/** Prepares a message for review; no side effect. */
export const draftMessage = defineTool({
  name: "draft_message",
  description: "Draft a message (recipient, subject, body) and get back a formatted preview. Sends nothing.",
  input: Message,
  output: Message.extend({ preview: z.string().describe("The message as the recipient will see it") }),
  ...READ_ONLY,
  agents: ["communication"],
  timeoutMs: 2_000,
  retry: { attempts: 0 },
  async run(message) {
    return Promise.resolve({
      ...message,
      preview: `To: ${message.to}\nSubject: ${message.subject}\n\n${message.body}`,
    });
  },
});

/**
 * Sends a message by writing it to the outbox, in the effect ledger's transaction: exactly one outbox row per
 * call, however often the node runs. High risk: a person approves (or edits, or rejects) it first. Reversible
 * while the message still waits for delivery: compensation withdraws it.
 */
export const sendMessage = defineTool({
  name: "send_message",
  description: "Send a message to a recipient. A person must approve it before it is sent.",
  input: Message,
  output: z.object({
    outbox_id: z.number().describe("Id of the outbox row"),
    to: z.string(),
    subject: z.string(),
    status: z.literal("queued").describe("Queued for delivery"),
  }),
  risk: "high",
  effects: "internal",
  target: { arg: "to", kind: "email" },
  reversible: true,
  idempotent: true,
  agents: ["communication"],
  timeoutMs: 5_000,
  retry: { attempts: 0 },
  artifact: (output) => `outbox:${output.outbox_id}`,
  async run({ to, subject, body }, ctx) {
    const db = ctx.tx ?? (await ctx.db());
    const inserted = await db.query<{ id: string }>(
      `insert into outbox (thread_id, tool_call_id, recipient, subject, body, approved_by)
       values ($1, $2, $3, $4, $5, $6)
       on conflict (thread_id, tool_call_id) do nothing returning id`,
      [ctx.threadId, ctx.toolCallId, to, subject, body, ctx.approvedBy ?? null],
    );
    const row =
      inserted.rows[0] ??
      (
        await db.query<{ id: string }>("select id from outbox where thread_id = $1 and tool_call_id = $2", [
          ctx.threadId,
          ctx.toolCallId,
        ])
      ).rows[0];
    return { outbox_id: Number(row?.id), to, subject, status: "queued" as const };
  },
  async compensate({ output }, ctx) {
    const id = (output as { outbox_id: number }).outbox_id;
    const db = ctx.tx ?? (await ctx.db());
    const { rows } = await db.query<{ status: string }>(
      "update outbox set status = case when status = 'queued' then 'withdrawn' else status end where id = $1 returning status",
      [id],
    );
    if (rows[0]?.status !== "withdrawn") {
      throw new ToolCallError(
        rows[0]
          ? `outbox message ${id} was already ${rows[0].status}; it cannot be withdrawn`
          : `outbox message ${id} is gone`,
        "conflict",
      );
    }
  },
});

/**
 * Posts a short notice to a chat channel through the deployment's webhook (KEEL_WEBHOOK_URL): an effect on an
 * outside system. It carries the effect ledger's key as its Idempotency-Key, so a receiver that honours the
 * header sees a repeated post once; transient failures are retried behind the webhook's circuit breaker.
 */
export const notifyWebhook = defineTool({
  name: "notify_webhook",
  description:
    "Post a short notice to a team chat channel through the configured webhook. Use only when the task asks to notify a channel.",
  input: z.object({
    channel: z.string().min(1).max(80).describe("Channel name, e.g. #ops"),
    text: z.string().min(1).max(4_000).describe("The notice"),
  }),
  output: z.object({
    delivered: z.literal(true),
    status: z.number().describe("HTTP status the webhook answered"),
  }),
  risk: "medium",
  effects: "external",
  target: { arg: "channel", kind: "channel" },
  reversible: false,
  idempotent: true,
  agents: ["communication"],
  timeoutMs: 10_000,
  retry: { attempts: 3 },
  rateLimit: { calls: 30, perSeconds: 60 },
  async run({ channel, text }, ctx) {
    if (!ctx.webhookUrl) {
      throw new ToolCallError(
        "No webhook is configured (KEEL_WEBHOOK_URL), so nothing was posted. Report that the channel was not notified.",
        "tool_error",
      );
    }
    const response = await fetch(ctx.webhookUrl, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        ...(ctx.idempotencyKey ? { "idempotency-key": ctx.idempotencyKey } : {}),
      },
      body: JSON.stringify({ channel, text }),
      signal: ctx.signal,
    });
    if (!response.ok) {
      // Status and headers let the dependency's retry tell transient from permanent and honour Retry-After.
      throw new HttpStatusError(`the webhook answered ${response.status}`, response.status, response.headers);
    }
    return { delivered: true as const, status: response.status };
  },
});

export const COMMUNICATION_TOOLS = [draftMessage, sendMessage, notifyWebhook];
