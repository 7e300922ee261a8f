import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { KEEL_BIN } from "./cli.js";

/** `keel serve` as a user starts it: a process on a free loopback port, spoken to over HTTP. */
export interface Served {
  url: string;
  child: ChildProcess;
  /** What it printed so far (stdout and stderr). */
  output(): string;
  /** SIGTERM, then its exit code. */
  stop(): Promise<number | null>;
}

const started: ChildProcess[] = [];

/** Starts `keel serve --port 0` with `args` and only `env` (plus PATH and HOME); resolves once it listens. */
export async function startServe(args: string[], env: Record<string, string>): Promise<Served> {
  const child = spawn(process.execPath, [KEEL_BIN, "serve", "--port", "0", ...args], {
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  started.push(child);
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (out += d.toString()));
  const deadline = Date.now() + 60_000;
  while (!/listening on (http:\/\/\S+)/.test(out)) {
    if (Date.now() > deadline || child.exitCode !== null)
      throw new Error(`keel serve did not start:\n${out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const url = /listening on (http:\/\/\S+)/.exec(out)![1]!;
  return {
    url,
    child,
    output: () => out,
    async stop() {
      if (child.exitCode !== null) return child.exitCode;
      const exited = once(child, "exit");
      child.kill("SIGTERM");
      const [code] = (await exited) as [number | null];
      return code;
    },
  };
}

/** Kills (SIGKILL) every server a test file started that is still running. */
export function killServers(): void {
  for (const child of started) if (child.exitCode === null) child.kill("SIGKILL");
}

export const post = (url: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });

/** A request the balancer passed on, and to which backend. */
export interface Forwarded {
  method: string;
  path: string;
  backend: string;
  lastEventId?: string;
}

export interface Balancer {
  url: string;
  /** Every request a backend answered, in order. */
  log: Forwarded[];
  close(): Promise<void>;
}

/**
 * A load balancer as deployments put in front of API nodes, on a free loopback port: each request goes to the first
 * backend that accepts a connection, so a node that stops listening (SIGTERM) is passed over. Requests are not
 * retried once a backend has them.
 */
export async function balance(backends: string[]): Promise<Balancer> {
  const log: Forwarded[] = [];
  const forward = (
    req: http.IncomingMessage,
    res: http.ServerResponse,
    body: Buffer,
    index: number,
  ): void => {
    const target = backends[index];
    if (!target) {
      res.writeHead(502, { "content-type": "text/plain" }).end("no backend is listening");
      return;
    }
    const entry = { method: req.method ?? "", path: req.url ?? "", backend: target };
    const lastEventId = req.headers["last-event-id"];
    const upstream = http.request(
      new URL(req.url ?? "/", target),
      { method: req.method, headers: { ...req.headers, host: new URL(target).host }, agent: false },
      (answer) => {
        log.push(typeof lastEventId === "string" ? { ...entry, lastEventId } : entry);
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.once("error", (error: NodeJS.ErrnoException) => {
      if (error.code === "ECONNREFUSED" && !res.headersSent) forward(req, res, body, index + 1);
      else res.destroy(error);
    });
    res.once("close", () => upstream.destroy());
    upstream.end(body);
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.once("end", () => forward(req, res, Buffer.concat(chunks), 0));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    log,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
