import http from "node:http";
import type { AddressInfo } from "node:net";

/** One scripted reply: assistant text, or tool calls (name + arguments object). */
export type ScriptedReply =
  | { content: string; finish_reason?: string }
  /** A tool call whose arguments are sent exactly as given (e.g. text that is not JSON). */
  | { raw_tool_call: { name: string; arguments: string } }
  | { tool_calls: { name: string; arguments: unknown }[] }
  /** A failure: the HTTP status, and the Retry-After header (seconds) when set. */
  | { status: number; retryAfter?: number }
  /** Takes the request and never answers (the connection stays open until the server closes). */
  | { hang: true };

export interface ScriptedServer {
  url: string;
  /** Every request body received, in order. */
  requests: { model: string; messages: unknown[]; tools?: { function: { name: string } }[] }[];
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
      res.writeHead(200, { "content-type": "application/json" });
      res.end(
        JSON.stringify({
          id: `chatcmpl-${n}`,
          object: "chat.completion",
          created: 0,
          model: parsed.model,
          choices: [
            {
              index: 0,
              message,
              finish_reason: "content" in reply ? (reply.finish_reason ?? "stop") : "tool_calls",
            },
          ],
          usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 },
        }),
      );
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
