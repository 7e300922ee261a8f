import { z } from "zod";
import { defineTool } from "../contract.js";

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
  risk: "low",
  effects: "none",
  reversible: true,
  idempotent: true,
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
  reversible: true,
  idempotent: true,
  agents: ["communication"],
  timeoutMs: 5_000,
  retry: { attempts: 0 },
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
      throw new Error(
        rows[0]
          ? `outbox message ${id} was already ${rows[0].status}; it cannot be withdrawn`
          : `outbox message ${id} is gone`,
      );
    }
  },
});

export const COMMUNICATION_TOOLS = [draftMessage, sendMessage];
