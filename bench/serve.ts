// keel serve beside langgraph dev, in one run, on the same graph (bench/graphs) with the same SDK client:
//
//   npm run bench:serve -- [--requests 200] [--concurrency 1,8,32] [--streams 1000] [--rounds 2] [--out bench/RESULTS.md]
//
// 1. runs.wait (a stateless run of the echo graph): latency p50/p95 and throughput at each concurrency, the two
//    servers alternating round by round; medians over rounds.
// 2. Idle SSE streams: N clients join the stream of one run that waits; the server's resident memory before and
//    after, per 1,000 streams (keel serve's Postgres runs in processes of its own and is not counted; langgraph dev
//    keeps everything in its own process).
// 3. A bounded loopback load test of keel serve's POST /tasks with autocannon (10 s, 10 connections, API-only node,
//    no rate limit): p95 latency and the count of errors and non-2xx answers.
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { Client } from "@langchain/langgraph-sdk";
import autocannon from "autocannon";
import { recordSection } from "./common.js";

const root = path.resolve(import.meta.dirname, "..");
const config = path.join(root, "bench/graphs/langgraph.json");
const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : fallback;
};
const REQUESTS = Number(arg("requests", "200"));
const CONCURRENCY = arg("concurrency", "1,8,32").split(",").map(Number);
const STREAMS = Number(arg("streams", "1000"));
const ROUNDS = Number(arg("rounds", "2"));
const OUT = arg("out", "");

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

interface Server {
  name: string;
  url: string;
  child: ChildProcess;
}

async function start(name: string, command: string, args: string[], env: Record<string, string>) {
  const port = await freePort();
  const child = spawn(command, [...args.map((a) => a.replace("$PORT", String(port)))], {
    cwd: root,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let log = "";
  child.stdout.on("data", (d: Buffer) => (log += d.toString()));
  child.stderr.on("data", (d: Buffer) => (log += d.toString()));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`${name} did not start:\n${log}`);
    const up = await fetch(`${url}/ok`).then(
      (r) => r.ok,
      () => false,
    );
    if (up) return { name, url, child } satisfies Server;
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Resident memory of a server's whole process group (langgraph dev runs its API in a child process). */
function rssMb(server: Server): number {
  const group = server.child.pid!;
  let kb = 0;
  for (const pid of fs.readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
      const pgrp = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]);
      if (pgrp !== group) continue;
      const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
      if (/^Name:\s*postgres/m.test(status)) continue;
      kb += Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
    } catch {
      // the process ended meanwhile
    }
  }
  return kb / 1024;
}

const pct = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function waitLatency(server: Server, concurrency: number) {
  const client = new Client({ apiUrl: server.url });
  const times: number[] = [];
  let next = 0;
  let errors = 0;
  const began = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < REQUESTS) {
        next++;
        const t0 = performance.now();
        try {
          await client.runs.wait(null, "echo", { input: { text: "bench" } });
          times.push(performance.now() - t0);
        } catch {
          errors++;
        }
      }
    }),
  );
  const wall = (performance.now() - began) / 1000;
  times.sort((a, b) => a - b);
  return { p50: pct(times, 50), p95: pct(times, 95), rps: times.length / wall, errors };
}

async function idleStreams(server: Server) {
  const client = new Client({ apiUrl: server.url });
  const thread = await client.threads.create();
  const run = await client.runs.create(thread.thread_id, "echo", {
    input: { text: "hold", hold_ms: 600_000 },
  });
  await new Promise((r) => setTimeout(r, 1000));
  global.gc?.();
  const before = rssMb(server);
  const controller = new AbortController();
  const opened: Promise<void>[] = [];
  let connected = 0;
  for (let i = 0; i < STREAMS; i++) {
    opened.push(
      fetch(`${server.url}/threads/${thread.thread_id}/runs/${run.run_id}/stream`, {
        signal: controller.signal,
      })
        .then(async (response) => {
          connected++;
          const reader = response.body!.getReader();
          for (;;) if ((await reader.read()).done) break;
        })
        .catch(() => undefined),
    );
  }
  const deadline = Date.now() + 60_000;
  while (connected < STREAMS && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  await new Promise((r) => setTimeout(r, 3000)); // let the streams settle into waiting
  const after = rssMb(server);
  controller.abort();
  await Promise.all(opened);
  await client.runs.cancel(thread.thread_id, run.run_id).catch(() => undefined);
  return { connected, before, after, perThousand: ((after - before) * 1000) / Math.max(1, connected) };
}

async function loadTasks() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "keel-bench-"));
  fs.chmodSync(dir, 0o755);
  const api = await start(
    "keel serve --no-worker",
    process.execPath,
    ["bin/keel.js", "serve", "--port", "$PORT", "--no-worker", "--config", config],
    { KEEL_DATA_DIR: dir, KEEL_RATE_LIMIT: "0" },
  );
  try {
    const result = await autocannon({
      url: `${api.url}/tasks`,
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ request: "Calculate 2 + 2" }),
      connections: 10,
      duration: 10,
    });
    return {
      requests: result.requests.total,
      rps: result.requests.average,
      p50: result.latency.p50,
      p95: result.latency.p97_5 ?? result.latency.p99,
      errors: result.errors + result.timeouts,
      non2xx: result.non2xx,
    };
  } finally {
    process.kill(-api.child.pid!, "SIGTERM");
    await new Promise((r) => api.child.once("exit", r));
  }
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "keel-bench-"));
fs.chmodSync(dir, 0o755);
console.log("starting keel serve and langgraph dev on the same graph");
const servers = [
  await start(
    "keel serve",
    process.execPath,
    ["bin/keel.js", "serve", "--port", "$PORT", "--config", config, "--concurrency", "8"],
    {
      KEEL_DATA_DIR: dir,
      KEEL_RATE_LIMIT: "0",
    },
  ),
  await start(
    "langgraph dev",
    path.join(root, "node_modules/.bin/langgraphjs"),
    ["dev", "--port", "$PORT", "--host", "127.0.0.1", "--no-browser", "--config", config],
    { LANGGRAPH_CLI_NO_ANALYTICS: "1" },
  ),
];
const latency: Record<
  string,
  Record<number, ReturnType<typeof waitLatency> extends Promise<infer R> ? R[] : never>
> = {};
try {
  for (const server of servers) await waitLatency(server, 4); // warm up: graphs loaded, connections open
  for (let round = 0; round < ROUNDS; round++)
    for (const c of CONCURRENCY)
      for (const server of round % 2 ? [...servers].reverse() : servers) {
        const r = await waitLatency(server, c);
        ((latency[server.name] ??= {})[c] ??= []).push(r);
        console.log(
          `round ${round + 1} ${server.name} c=${c}: p50 ${r.p50.toFixed(1)} ms, p95 ${r.p95.toFixed(1)} ms, ${r.rps.toFixed(1)} runs/s, ${r.errors} errors`,
        );
      }
  const streams: Record<string, Awaited<ReturnType<typeof idleStreams>>> = {};
  for (const server of servers) {
    streams[server.name] = await idleStreams(server);
    console.log(
      `${server.name}: ${streams[server.name]!.connected} idle streams, ${streams[server.name]!.perThousand.toFixed(1)} MB per 1,000`,
    );
  }
  for (const server of servers) process.kill(-server.child.pid!, "SIGTERM");
  const load = await loadTasks();
  console.log(
    `POST /tasks: ${load.requests} requests, p95 ${load.p95} ms, ${load.errors} errors, ${load.non2xx} non-2xx`,
  );

  const [keel, dev] = servers.map((s) => s.name) as [string, string];
  const rows = CONCURRENCY.map((c) => {
    const k = latency[keel]![c]!;
    const d = latency[dev]![c]!;
    const m = (xs: { p50: number; p95: number; rps: number; errors: number }[], key: "p50" | "p95" | "rps") =>
      median(xs.map((x) => x[key]));
    return `| ${c} | ${m(d, "p50").toFixed(1)} / ${m(k, "p50").toFixed(1)} | ${m(d, "p95").toFixed(1)} / ${m(k, "p95").toFixed(1)} | ${m(d, "rps").toFixed(1)} / ${m(k, "rps").toFixed(1)} | ${(m(d, "rps") / m(k, "rps")).toFixed(2)} | ${[...d, ...k].reduce((a, x) => a + x.errors, 0)} |`;
  });
  const s = (name: string) => streams[name]!;
  const report = `Measured ${new Date().toISOString().slice(0, 10)} · ${REQUESTS} runs per side, concurrency and round · ${ROUNDS} rounds (medians) · ${os.cpus().length} cores · node ${process.version}

| concurrency | runs.wait p50 ms (dev / keel) | p95 ms (dev / keel) | runs/s (dev / keel) | dev/keel throughput | errors |
| --- | --- | --- | --- | --- | --- |
${rows.join("\n")}

Idle SSE streams (${STREAMS} clients joined to one waiting run): langgraph dev ${s(dev).connected} connected, ${s(dev).before.toFixed(0)} → ${s(dev).after.toFixed(0)} MB, **${s(dev).perThousand.toFixed(1)} MB per 1,000**; keel serve ${s(keel).connected} connected, ${s(keel).before.toFixed(0)} → ${s(keel).after.toFixed(0)} MB, **${s(keel).perThousand.toFixed(1)} MB per 1,000** (its Postgres not counted).

POST /tasks under autocannon (10 connections, 10 s, API-only node, no rate limit): ${load.requests} requests, ${load.rps.toFixed(0)} req/s, p50 ${load.p50} ms, p97.5 ${load.p95} ms, ${load.errors} errors, ${load.non2xx} non-2xx answers.`;
  console.log(report);
  if (OUT) recordSection(OUT, "serve", report);
} finally {
  for (const server of servers) {
    try {
      process.kill(-server.child.pid!, "SIGKILL");
    } catch {
      // already gone
    }
  }
}
