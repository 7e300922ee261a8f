import {
  AIMessage,
  HumanMessage,
  SystemMessage,
  ToolMessage,
  type BaseMessage,
} from "@langchain/core/messages";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { OfflineChatModel } from "../../models/offline/model.js";
import { chunkHead, delta, sendReply, sse } from "./openai-server.js";

/** The faults the server injects, one per faulty call. */
export const MODEL_FAULTS = [
  "rate_limited", // 429 with Retry-After
  "server_error", // 503
  "no_answer", // takes the request and never answers
  "stream_cut", // the stream stops mid-reply
  "malformed_json", // a tool call whose arguments are not JSON
  "unknown_tool", // a call to a tool the agent does not have
  "schema_break", // arguments that break the tool's schema
  "plan_cycle", // a plan whose tasks depend on each other in a circle
] as const;
export type ModelFault = (typeof MODEL_FAULTS)[number];

export interface ChaosModelServer {
  url: string;
  calls: number;
  faults: Record<ModelFault, number>;
  close(): Promise<void>;
}

interface ChatRequest {
  model: string;
  stream?: boolean;
  messages: {
    role: string;
    content: string | null;
    tool_calls?: { id: string; function: { name: string; arguments: string } }[];
    tool_call_id?: string;
  }[];
  tools?: { function: { name: string; parameters?: object } }[];
}

/** The OpenAI messages as LangChain messages, tool results named after the call they answer. */
function toMessages(request: ChatRequest): BaseMessage[] {
  const names = new Map<string, string>();
  return request.messages.map((m) => {
    if (m.role === "system") return new SystemMessage(m.content ?? "");
    if (m.role === "user") return new HumanMessage(m.content ?? "");
    if (m.role === "tool") {
      const content = m.content ?? "";
      // Keel's tool errors are prose; a result is JSON.
      const ok = /^\s*[[{]/.test(content);
      return new ToolMessage({
        content,
        tool_call_id: m.tool_call_id ?? "",
        name: names.get(m.tool_call_id ?? "") ?? "",
        status: ok ? "success" : "error",
      });
    }
    const calls = (m.tool_calls ?? []).map((c) => {
      names.set(c.id, c.function.name);
      let args: Record<string, unknown> = {};
      try {
        args = JSON.parse(c.function.arguments || "{}") as Record<string, unknown>;
      } catch {
        // the model's own malformed arguments, read as none
      }
      return { id: c.id, name: c.function.name, args, type: "tool_call" as const };
    });
    return new AIMessage({ content: m.content ?? "", tool_calls: calls });
  });
}

/**
 * An OpenAI-compatible server on loopback whose replies come from Keel's offline model (so the agents get
 * sensible work to do over the real HTTP path), with a fault injected into a share of the calls. Seeded, so a
 * run can be replayed; every fault is counted.
 */
export async function startChaosModelServer(options: {
  faultRate: number;
  random: () => number;
  sqlRowLimit?: number;
  /** The faults to choose from (default: every one). */
  kinds?: readonly ModelFault[];
}): Promise<ChaosModelServer> {
  const kinds = options.kinds ?? MODEL_FAULTS;
  const brain = new OfflineChatModel({ sqlRowLimit: options.sqlRowLimit ?? 50 });
  const faults = Object.fromEntries(MODEL_FAULTS.map((f) => [f, 0])) as Record<ModelFault, number>;
  const state = { calls: 0 };
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (d: Buffer) => (body += d.toString()));
    req.on("end", () => {
      void (async () => {
        if (req.method !== "POST" || !req.url?.endsWith("/chat/completions")) {
          res.writeHead(404).end();
          return;
        }
        const request = JSON.parse(body) as ChatRequest;
        const n = ++state.calls;
        const tools = (request.tools ?? []).map((t) => t.function);
        const planning = tools.some((t) => t.name === "submit_plan");
        const fault: ModelFault | undefined =
          options.random() < options.faultRate
            ? kinds[Math.floor(options.random() * kinds.length)]
            : undefined;
        if (fault) faults[fault]++;
        if (fault === "rate_limited" || fault === "server_error") {
          res.writeHead(fault === "rate_limited" ? 429 : 503, {
            "content-type": "application/json",
            ...(fault === "rate_limited" ? { "retry-after": "1" } : {}),
          });
          res.end(JSON.stringify({ error: { message: `injected ${fault}` } }));
          return;
        }
        if (fault === "no_answer") return; // Keel's per-try timeout must end it
        const reply = (await brain
          .bindTools(tools.map((t) => ({ type: "function" as const, function: t })))
          .invoke(toMessages(request))) as AIMessage;
        let calls = (reply.tool_calls ?? []).map((c) => ({
          id: c.id ?? `call_${n}`,
          function: { name: c.name, arguments: JSON.stringify(c.args) },
        }));
        const content = typeof reply.content === "string" ? reply.content : "";
        if (fault === "stream_cut") {
          res.writeHead(200, { "content-type": "text/event-stream" });
          res.write(
            sse({
              ...chunkHead(n, request.model),
              choices: [delta({ role: "assistant", content: content.slice(0, 5) || "…" })],
            }),
          );
          setTimeout(() => res.socket?.destroy(), 10);
          return;
        }
        if (fault === "plan_cycle" && planning && calls[0]) {
          calls = [
            {
              ...calls[0],
              function: {
                name: "submit_plan",
                arguments: JSON.stringify({
                  tasks: [
                    { task_id: "t1", type: "research", objective: "first", depends_on: ["t2"] },
                    { task_id: "t2", type: "research", objective: "second", depends_on: ["t1"] },
                  ],
                }),
              },
            },
          ];
        } else if (fault === "malformed_json" && calls[0]) {
          calls[0] = { ...calls[0], function: { ...calls[0].function, arguments: '{"oops": ' } };
        } else if (fault === "unknown_tool" && calls[0]) {
          calls[0] = { ...calls[0], function: { name: "delete_everything", arguments: "{}" } };
        } else if (fault === "schema_break" && calls[0]) {
          calls[0] = { ...calls[0], function: { ...calls[0].function, arguments: '{"unexpected": [1, 2]}' } };
        }
        const message = calls.length > 0 ? { content: null, tool_calls: calls } : { content };
        const finish = calls.length > 0 ? "tool_calls" : "stop";
        sendReply(res, { n, model: request.model, message, finish_reason: finish, stream: request.stream });
      })().catch((error: unknown) => {
        res.writeHead(500, { "content-type": "application/json" });
        res.end(JSON.stringify({ error: { message: `chaos server: ${(error as Error).message}` } }));
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    get calls() {
      return state.calls;
    },
    faults,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
