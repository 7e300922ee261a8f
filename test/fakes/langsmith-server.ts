import { randomUUID } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";

/**
 * A LangSmith-compatible API on loopback, enough for tracing and for eval uploads: it answers the calls the
 * `langsmith` client makes (server info, datasets, examples, projects, runs, feedback) and records each request.
 */
export async function startLangSmithServer() {
  const requests: { method: string; path: string; body: string }[] = [];
  const datasets: { id: string; name: string }[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (d: Buffer) => chunks.push(d));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("latin1");
      const url = new URL(req.url ?? "/", "http://localhost");
      requests.push({ method: req.method ?? "", path: url.pathname + url.search, body });
      const send = (value: unknown) => {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify(value));
      };
      const p = url.pathname;
      if (p === "/info")
        return send({ version: "0.10.0", instance_flags: { dataset_examples_multipart_enabled: true } });
      if (p === "/datasets" && req.method === "GET")
        return send(datasets.filter((d) => d.name === url.searchParams.get("name")));
      if (p === "/datasets" && req.method === "POST") {
        const dataset = { id: randomUUID(), ...(JSON.parse(body) as { name: string }) };
        datasets.push(dataset);
        return send(dataset);
      }
      if (p === "/examples" && req.method === "GET") return send([]);
      if (/\/datasets\/[^/]+\/examples$/.test(p) && req.method === "POST") {
        const ids = [...new Set([...body.matchAll(/name="([0-9a-f-]{36})"/g)].map((m) => m[1]!))];
        return send({ example_ids: ids, count: ids.length });
      }
      if (p.startsWith("/examples/")) return send({ id: p.split("/").pop(), metadata: {} });
      if (p === "/sessions" && req.method === "POST")
        return send({ id: randomUUID(), ...(JSON.parse(body) as object) });
      if (p === "/feedback") return send({ id: randomUUID() });
      return send({});
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
