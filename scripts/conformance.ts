// Runs LangGraph's own Agent Server API test suite against keel serve.
//
//   npm run conformance -- <path to a langgraphjs checkout> [--json] [--filter <test name pattern>]
//
// The suite stays in the checkout: it is copied to a temporary folder outside this repository, its fixed server
// address is pointed at the keel serve this script starts (on a free port, with its fixture langgraph.json, an
// embedded Postgres of its own and KEEL_TEST_ENDPOINTS=1 for the suite's POST /internal/truncate), and it is run
// with this repository's vitest. The two packages the suite needs beyond Keel's own (postgres, wait-port) are
// installed into the temporary folder. docs/CONFORMANCE.md records the result and the reason for every failure.
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";

const root = path.resolve(import.meta.dirname, "..");
const args = process.argv.slice(2);
const json = args.includes("--json");
const verbose = args.includes("--verbose");
// --against langgraph-dev runs the same suite, the same way, against LangGraph's own JS server (the baseline).
const againstAt = args.indexOf("--against");
const against = againstAt >= 0 ? args[againstAt + 1] : "keel";
if (against !== "keel" && against !== "langgraph-dev") {
  console.error(`--against takes keel or langgraph-dev, not ${against}`);
  process.exit(2);
}
const filterAt = args.indexOf("--filter");
const filter = filterAt >= 0 ? args[filterAt + 1] : undefined;
const checkout = args.find(
  (a, i) => !a.startsWith("--") && args[i - 1] !== "--filter" && args[i - 1] !== "--against",
);
if (!checkout) {
  console.error(
    "usage: npm run conformance -- <path to a langgraphjs checkout> [--against keel|langgraph-dev] [--json] [--verbose] [--filter <pattern>]",
  );
  process.exit(2);
}
const suite = [path.join(checkout, "libs/langgraph-api/tests"), path.join(checkout, "tests")].find((p) =>
  fs.existsSync(path.join(p, "api.test.mts")),
);
if (!suite) {
  console.error(
    `${checkout} has no libs/langgraph-api/tests/api.test.mts: give the root of a langgraphjs checkout.`,
  );
  process.exit(2);
}

const log = (line: string) => {
  if (!json) console.log(line);
};

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
    server.once("error", reject);
  });
}

/** A node_modules of links to Keel's packages plus the suite's own extras, so the copy resolves what it imports. */
function linkModules(into: string, extras: string): void {
  const target = path.join(into, "node_modules");
  fs.mkdirSync(target, { recursive: true });
  for (const source of [path.join(root, "node_modules"), path.join(extras, "node_modules")]) {
    for (const name of fs.readdirSync(source)) {
      if (name.startsWith(".")) continue;
      const entries = name.startsWith("@")
        ? fs.readdirSync(path.join(source, name)).map((sub) => `${name}/${sub}`)
        : [name];
      for (const entry of entries) {
        const link = path.join(target, entry);
        if (fs.existsSync(link)) continue;
        fs.mkdirSync(path.dirname(link), { recursive: true });
        fs.symlinkSync(path.join(source, entry), link);
      }
    }
  }
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), "keel-conformance-"));
// The embedded Postgres runs as its own system user when this runs as root: it must reach its data folder.
fs.chmodSync(work, 0o755);
const tests = path.join(work, "tests");
fs.cpSync(suite, tests, { recursive: true });
const port = await freePort();
const url = `http://127.0.0.1:${port}`;
const testFile = path.join(tests, "api.test.mts");
fs.writeFileSync(testFile, fs.readFileSync(testFile, "utf8").replaceAll("http://localhost:2024", url));
log(`conformance: suite copied to ${work}; installing its extra packages`);
const extras = path.join(work, "extras");
fs.mkdirSync(extras);
execFileSync(
  "npm",
  ["install", "--prefix", extras, "--no-audit", "--no-fund", "--silent", "postgres@3", "wait-port@1"],
  {
    stdio: json ? "ignore" : "inherit",
  },
);
linkModules(work, extras);
fs.writeFileSync(
  path.join(work, "vitest.config.mjs"),
  "export default { test: { include: ['tests/api.test.mts'], testTimeout: 60000, hookTimeout: 60000, maxWorkers: 1, fileParallelism: false } };\n",
);

const graphsConfig = JSON.parse(fs.readFileSync(path.join(tests, "graphs/langgraph.json"), "utf8")) as {
  env?: Record<string, string>;
};
const fixtures = path.join(tests, "graphs/langgraph.json");
const [command, commandArgs] =
  against === "keel"
    ? [
        process.execPath,
        [path.join(root, "bin/keel.js"), "serve", "--port", String(port), "--config", fixtures],
      ]
    : [
        path.join(root, "node_modules/.bin/langgraphjs"),
        ["dev", "--port", String(port), "--host", "127.0.0.1", "--no-browser", "--config", fixtures],
      ];
const server = spawn(command, commandArgs, {
  detached: true,
  env: {
    PATH: process.env.PATH ?? "",
    HOME: process.env.HOME ?? "",
    LANGGRAPH_CLI_NO_ANALYTICS: "1",
    ...graphsConfig.env,
    KEEL_DATA_DIR: path.join(work, "keel"),
    KEEL_TEST_ENDPOINTS: "1",
    KEEL_RATE_LIMIT: "0",
    ...(process.env.DATABASE_URL ? { DATABASE_URL: process.env.DATABASE_URL } : {}),
  },
  stdio: ["ignore", "pipe", "pipe"],
});
let serverOutput = "";
server.stdout.on("data", (d: Buffer) => (serverOutput += d.toString()));
server.stderr.on("data", (d: Buffer) => (serverOutput += d.toString()));
const deadline = Date.now() + 120_000;
while (
  !(await fetch(`${url}/ok`).then(
    (r) => r.ok,
    () => false,
  ))
) {
  if (server.exitCode !== null || Date.now() > deadline) {
    console.error(`${against} did not start:\n${serverOutput}`);
    process.exit(1);
  }
  await new Promise((r) => setTimeout(r, 100));
}
log(`conformance: ${against} on ${url}; running the suite`);

const results = path.join(work, "results.json");
const vitest = spawn(
  process.execPath,
  [
    path.join(root, "node_modules/vitest/vitest.mjs"),
    "run",
    "--root",
    work,
    "--reporter=json",
    `--outputFile=${results}`,
    ...(filter ? ["-t", filter] : []),
  ],
  { cwd: work, stdio: json ? "ignore" : ["ignore", "ignore", "inherit"], env: { ...process.env, CI: "" } },
);
await new Promise((resolve) => vitest.once("exit", resolve));
try {
  process.kill(-server.pid!, "SIGTERM");
  await new Promise((resolve) => (server.exitCode !== null ? resolve(null) : server.once("exit", resolve)));
} catch {
  // the server had already exited (its output, with --verbose, says why)
}

interface Assertion {
  fullName: string;
  status: "passed" | "failed" | "pending" | "skipped" | "todo";
  failureMessages: string[];
}
const report = JSON.parse(fs.readFileSync(results, "utf8")) as {
  numPassedTests: number;
  numFailedTests: number;
  numPendingTests: number;
  numTodoTests: number;
  testResults: { assertionResults: Assertion[]; message?: string }[];
};
const all = report.testResults.flatMap((r) => r.assertionResults);
const failed = all
  .filter((a) => a.status === "failed")
  .map((a) => ({ test: a.fullName, error: (a.failureMessages[0] ?? "").split("\n")[0]!.slice(0, 300) }));
const summary = {
  passed: report.numPassedTests,
  failed: report.numFailedTests,
  skipped: report.numPendingTests + report.numTodoTests,
  failures: failed,
  suiteErrors: report.testResults.map((r) => r.message).filter(Boolean),
};
if (verbose) console.log(serverOutput);
if (json) console.log(JSON.stringify(summary, null, 2));
else {
  for (const f of failed) console.log(`FAIL ${f.test}\n     ${f.error}`);
  for (const m of summary.suiteErrors) console.log(`suite error: ${m}`);
  console.log(`${summary.passed} passed, ${summary.failed} failed, ${summary.skipped} skipped`);
}
fs.rmSync(work, { recursive: true, force: true });
