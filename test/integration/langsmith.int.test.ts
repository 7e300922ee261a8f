import http from "node:http";
import net from "node:net";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { json, keel } from "../helpers/cli.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";

/**
 * LangSmith through LangChain's own tracer: runs reach a LangSmith-compatible endpoint grouped by the Keel task,
 * and an endpoint that never answers does not hold `keel run` at exit.
 */
let t: TestDatabase;
const servers: { close: (cb: () => void) => void }[] = [];

beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  await t?.drop();
});

async function listen(server: http.Server | net.Server): Promise<number> {
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return (server.address() as AddressInfo).port;
}

async function timed(env: Record<string, string>) {
  const started = Date.now();
  const result = await keel(["run", "--sample", "4", "--no-input", "--json"], {
    DATABASE_URL: t.url,
    ...env,
  });
  return { ...result, ms: Date.now() - started };
}

describe("LangSmith", () => {
  it("receives the run's traces, grouped by the task", async () => {
    const bodies: string[] = [];
    const port = await listen(
      http.createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on("data", (d: Buffer) => chunks.push(d));
        req.on("end", () => {
          bodies.push(`${req.method} ${req.url}\n${Buffer.concat(chunks).toString("latin1")}`);
          res.writeHead(200, { "content-type": "application/json" });
          res.end(req.url?.startsWith("/info") ? JSON.stringify({ version: "0.10.0" }) : "{}");
        });
      }),
    );
    const result = await timed({
      LANGSMITH_TRACING: "true",
      LANGSMITH_API_KEY: "test-key",
      LANGSMITH_ENDPOINT: `http://127.0.0.1:${port}`,
      LANGSMITH_PROJECT: "keel-tests",
    });
    expect(result.code, result.stderr).toBe(0);
    const { task_id } = json<{ task_id: string }>(result);
    const runs = bodies.filter((b) => b.startsWith("POST /runs"));
    expect(runs.length).toBeGreaterThan(0);
    const all = runs.join("\n");
    expect(all).toContain(`keel task ${task_id}`);
    expect(all).toMatch(new RegExp(`"keel_task_id":"${task_id}"`));
    expect(all).toContain("keel-tests");
  }, 60_000);

  it("with an endpoint that never answers, keel run still exits within a few seconds of its work", async () => {
    let connections = 0;
    const sockets = new Set<net.Socket>();
    const port = await listen(
      net.createServer((socket) => {
        connections++;
        sockets.add(socket);
        socket.on("error", () => undefined); // accept, read nothing, answer nothing
      }),
    );
    const baseline = await timed({});
    const traced = await timed({
      LANGSMITH_TRACING: "true",
      LANGSMITH_API_KEY: "test-key",
      LANGSMITH_ENDPOINT: `http://127.0.0.1:${port}`,
      KEEL_LANGSMITH_FLUSH_MS: "1000",
    });
    for (const s of sockets) s.destroy();
    expect(baseline.code, baseline.stderr).toBe(0);
    expect(traced.code, traced.stderr).toBe(0);
    expect(json<{ status: string }>(traced).status).toBe("done");
    expect(connections).toBeGreaterThan(0); // it really tried to reach LangSmith
    // Without a bound the client waits on each request in turn (about half a minute here, minutes by default).
    expect(traced.ms - baseline.ms).toBeLessThan(10_000);
  }, 90_000);

  it("stays off, saying why, when tracing is asked for without a key", async () => {
    const result = await timed({ LANGSMITH_TRACING: "true" });
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(
      /LANGSMITH_TRACING=true but LANGSMITH_API_KEY is not set; LangSmith tracing is off/,
    );
  }, 60_000);
});
