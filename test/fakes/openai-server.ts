import http from "node:http";
import type { AddressInfo } from "node:net";

/**
 * One scripted reply: assistant text, or tool calls (name + arguments object). A request with `stream: true`
 * gets the reply as server-sent events, a few characters per chunk; `pauseMs` holds back everything after the
 * first chunk for that long, so the time to the first token differs from the time to the whole reply.
 */
export type ScriptedReply =
  | { content: string; finish_reason?: string; pauseMs?: number }
  /** A tool call whose arguments are sent exactly as given (e.g. text that is not JSON). */
  | { raw_tool_call: { name: string; arguments: string } }
  | { tool_calls: { name: string; arguments: unknown }[] }
  /** A failure: the HTTP status, and the Retry-After header (seconds) when set. */
  | { status: number; retryAfter?: number }
  /** Takes the request and never answers (the connection stays open until the server closes). */
  | { hang: true }
  /**
   * A streamed reply that stops after the first chunks of `content`: "close" ends the response without a finish
   * reason or `[DONE]`, "reset" destroys the connection.
   */
  | { cut: "close" | "reset"; content: string };

export interface ScriptedServer {
  url: string;
  /** Every request body received, in order. */
  requests: {
    model: string;
    messages: unknown[];
    tools?: { function: { name: string } }[];
    stream?: boolean;
  }[];
  /** When each request arrived (ms since the epoch). */
  arrivals: number[];
  close(): Promise<void>;
}

/**
 * A scripted OpenAI-compatible server on loopback: answers POST /chat/completions with the next scripted reply
 * and fails loudly (HTTP 500) when the script runs out, so a test never passes on an unplanned call.
 */
export async function startScriptedServer(script: ScriptedReply[]): Promise<ScriptedServer> {
  const requests: ScriptedServer["requests"] = [];
  const arrivals: number[] = [];
  let n = 0;
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (d: Buffer) => (body += d.toString()));
    req.on("end", () => {
      if (req.method !== "POST" || !req.url?.endsWith("/chat/completions")) {
        res.writeHead(404).end();
        return;
      }
      const parsed = JSON.parse(body) as ScriptedServer["requests"][number];
      requests.push(parsed);
      arrivals.push(Date.now());
      const reply = script[n++];
      if (!reply) {
        res.writeHead(500, { "content-type": "application/json" });
        res.end(JSON.stringify({ error: { message: `script exhausted after ${n - 1} replies` } }));
        return;
      }
      if ("hang" in reply) return;
      if ("status" in reply) {
        const headers: Record<string, string> = { "content-type": "application/json" };
        if (reply.retryAfter !== undefined) headers["retry-after"] = String(reply.retryAfter);
        res.writeHead(reply.status, headers);
        res.end(JSON.stringify({ error: { message: `scripted failure ${reply.status}` } }));
        return;
      }
      if ("cut" in reply) {
        res.writeHead(200, { "content-type": "text/event-stream" });
        const half = reply.content.slice(0, Math.max(1, Math.floor(reply.content.length / 2)));
        res.write(
          sse({ ...chunkHead(n, parsed.model), choices: [delta({ role: "assistant", content: half })] }),
        );
        setTimeout(() => (reply.cut === "reset" ? res.socket?.destroy() : res.end()), 20);
        return;
      }
      const message =
        "content" in reply
          ? { role: "assistant", content: reply.content }
          : "raw_tool_call" in reply
            ? {
                role: "assistant",
                content: null,
                tool_calls: [{ id: `call_${n}_0`, type: "function", function: reply.raw_tool_call }],
              }
            : {
                role: "assistant",
                content: null,
                tool_calls: reply.tool_calls.map((c, i) => ({
                  id: `call_${n}_${i}`,
                  type: "function",
                  function: { name: c.name, arguments: JSON.stringify(c.arguments) },
                })),
              };
      const finish_reason = "content" in reply ? (reply.finish_reason ?? "stop") : "tool_calls";
      sendReply(res, {
        n,
        model: parsed.model,
        message,
        finish_reason,
        stream: parsed.stream,
        pauseMs: "pauseMs" in reply ? reply.pauseMs : 0,
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    requests,
    arrivals,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections(); // hung requests too
      }),
  };
}

export const sse = (data: unknown) => `data: ${JSON.stringify(data)}\n\n`;
export const chunkHead = (n: number, model: string) => ({
  id: `chatcmpl-${n}`,
  object: "chat.completion.chunk",
  created: 0,
  model,
});
export const delta = (d: object, finish_reason: string | null = null) => ({
  index: 0,
  delta: d,
  finish_reason,
});

/** Pieces of at most `size` characters (at least one piece, empty for ""). */
function pieces(text: string, size = 8): string[] {
  const out: string[] = [];
  for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size));
  return out.length > 0 ? out : [""];
}

interface Message {
  content: string | null;
  tool_calls?: { id: string; function: { name: string; arguments: string } }[];
}

/** The reply as OpenAI streams it: role, content or tool-call deltas, the finish reason, usage, `[DONE]`. */
export function streamReply(
  res: http.ServerResponse,
  head: object,
  message: Message,
  finish_reason: string,
  pauseMs = 0,
): void {
  const chunks: object[] = [];
  if (message.tool_calls) {
    message.tool_calls.forEach((call, index) => {
      pieces(call.function.arguments).forEach((args, i) =>
        chunks.push({
          ...head,
          choices: [
            delta({
              ...(index === 0 && i === 0 ? { role: "assistant", content: null } : {}),
              tool_calls: [
                i === 0
                  ? {
                      index,
                      id: call.id,
                      type: "function",
                      function: { name: call.function.name, arguments: args },
                    }
                  : { index, function: { arguments: args } },
              ],
            }),
          ],
        }),
      );
    });
  } else {
    pieces(message.content ?? "").forEach((content, i) =>
      chunks.push({ ...head, choices: [delta(i === 0 ? { role: "assistant", content } : { content })] }),
    );
  }
  chunks.push({ ...head, choices: [delta({}, finish_reason)] });
  chunks.push({ ...head, choices: [], usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 } });
  res.writeHead(200, { "content-type": "text/event-stream" });
  res.write(sse(chunks[0]));
  setTimeout(() => {
    for (const chunk of chunks.slice(1)) res.write(sse(chunk));
    res.end("data: [DONE]\n\n");
  }, pauseMs);
}

/** Answers one chat completion: streamed as OpenAI streams it when the request asked for a stream, else JSON. */
export function sendReply(
  res: http.ServerResponse,
  r: {
    n: number;
    model: string;
    message: Message;
    finish_reason: string;
    stream?: boolean;
    pauseMs?: number;
  },
): void {
  if (r.stream) {
    streamReply(res, chunkHead(r.n, r.model), r.message, r.finish_reason, r.pauseMs);
    return;
  }
  res.writeHead(200, { "content-type": "application/json" });
  res.end(
    JSON.stringify({
      id: `chatcmpl-${r.n}`,
      object: "chat.completion",
      created: 0,
      model: r.model,
      choices: [{ index: 0, message: { role: "assistant", ...r.message }, finish_reason: r.finish_reason }],
      usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 },
    }),
  );
}
