import { spawn } from "node:child_process";
import { once } from "node:events";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { embeddedStatus } from "../../checkpoints/embedded.js";
import { json, keel, KEEL_BIN } from "../helpers/cli.js";
import { useTestDatabase, type TestDatabase } from "../helpers/db.js";

let t: TestDatabase;
let env: Record<string, string>;
useTestDatabase((db, dbEnv) => ((t = db), (env = dbEnv)));

interface RunJson {
  task_id: string;
  thread_id: string;
  status: string;
  final_answer: string | null;
  error: { code: string | null; fault: string | null; message: string | null } | null;
  pending_approvals: {
    approval_id: string;
    context: { actions: { tool: string; args: Record<string, string> }[] };
  }[];
  results: { task_id: string; status: string }[];
  children: { agent_task_id: string; status: string }[];
}

const toolCalls = async (threadId: string) =>
  (
    await t.db.pool.query<{ tool: string; tool_call_id: string }>(
      "select tool, tool_call_id from tool_calls where thread_id = $1 order by id",
      [threadId],
    )
  ).rows;

describe("keel run / keel resume across processes", () => {
  it("Ctrl-C at the approval prompt ends cleanly, leaves the task waiting, and says how to decide", async () => {
    // The prompt only appears on a terminal: `script` gives the command one, and Ctrl-C is typed into it.
    const command = [process.execPath, KEEL_BIN, "run", "Email ops@harbor.example about the drill at noon"]
      .map((word) => `'${word}'`)
      .join(" ");
    const child = spawn("script", ["-qfec", command, "/dev/null"], {
      env: { ...env, PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", TERM: "dumb" },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let output = "";
    let typed = false;
    child.stderr.on("data", (d: Buffer) => (output += d.toString()));
    child.stdout.on("data", (d: Buffer) => {
      output += d.toString();
      if (!typed && output.includes("Approve, edit or reject? [a/e/r]")) {
        typed = true;
        child.stdin.write("\x03");
      }
    });
    const [code] = (await once(child, "close")) as [number | null];
    expect(typed, output).toBe(true);
    expect(code, output).toBe(130);
    const taskId = /task (\S+) ·/.exec(output)![1]!;
    expect(output).toContain(`The task is waiting for approval. Task: ${taskId}`);
    expect(output).toMatch(new RegExp(`keel resume ${taskId} --approve`));
    expect(output).not.toMatch(/at .*\.ts:\d+/); // no stack trace
    const { rows } = await t.db.pool.query(
      "select t.status, t.queue, a.status as approval from tasks t join approvals a on a.task_id = t.id where t.id = $1",
      [taskId],
    );
    // Waiting for a person, on the default queue: any worker continues it once someone decides.
    expect(rows).toEqual([{ status: "waiting_for_approval", queue: "default", approval: "pending" }]);
    const resumed = await keel(["resume", taskId, "--approve", "--reviewer", "dana", "--json"], env);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(json<RunJson>(resumed).status).toBe("done");
  });

  it("stops at the approval in one process and finishes from the checkpoint in another", async () => {
    const first = await keel(["run", "--sample", "1", "--no-input", "--json"], env);
    expect(first.code).toBe(3);
    const waiting = json<RunJson>(first);
    expect(waiting.status).toBe("waiting_for_approval");
    expect(waiting.pending_approvals[0]!.context.actions[0]).toMatchObject({
      tool: "send_message",
      args: { to: "ops@harbor.example" },
    });
    expect(waiting.children.map((c) => [c.agent_task_id, c.status])).toEqual([
      ["t1", "done"],
      ["t2", "done"],
      ["t3", "done"],
      ["t4", "waiting_for_approval"],
    ]);
    expect(first.stderr).toContain("offline model");
    const before = await toolCalls(waiting.thread_id);
    expect(before.map((r) => r.tool)).toContain("run_sql");

    const second = await keel(
      ["resume", waiting.thread_id, "--approve", "--reviewer", "dana", "--json"],
      env,
    );
    expect(second.code, second.stderr).toBe(0);
    const done = json<RunJson>(second);
    expect(done.status).toBe("done");
    expect(done.results.map((r) => r.status)).toEqual(["done", "done", "done", "done"]);
    expect(done.children.every((c) => c.status === "done")).toBe(true);
    expect(done.final_answer).toContain("[t4]");

    const { rows } = await t.db.pool.query("select recipient, approved_by from outbox where thread_id = $1", [
      waiting.thread_id,
    ]);
    expect(rows).toEqual([{ recipient: "ops@harbor.example", approved_by: "dana" }]);
    const after = await toolCalls(waiting.thread_id);
    // Nothing that ran before the interrupt ran again: the log only grew by the send.
    expect(after.slice(0, before.length)).toEqual(before);
    expect(after.slice(before.length).map((r) => r.tool)).toEqual(["send_message"]);
    expect(new Set(after.map((r) => r.tool_call_id)).size).toBe(after.length);

    const again = await keel(["resume", waiting.thread_id, "--approve"], env);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/is not waiting for approval \(it is done\)/);
  });

  it("prints progress and the resume command in human mode", async () => {
    const result = await keel(
      ["run", "--no-input", "Email oncall@harbor.example that the drill moves to Friday"],
      env,
    );
    expect(result.code).toBe(3);
    expect(result.stdout).toMatch(/plan: 1 task/);
    expect(result.stdout).toMatch(/t1 draft_message/);
    expect(result.stdout).toMatch(/approval needed \[approval \S+\]: task t1 \(communication\)/);
    const threadId = /Task: (\S+)/.exec(result.stdout)![1]!;
    expect(result.stdout).toContain(`keel resume ${threadId} --approve`);

    // A rejected action: the agent is told, the answer says so, and the task ends failed (rejected).
    const rejected = await keel(["resume", threadId, "--reject", "--reason", "not yet"], env);
    expect(rejected.code).toBe(1);
    expect(rejected.stdout).toMatch(/A person rejected this send_message call: not yet/);
    expect(rejected.stdout).toMatch(/status: failed \(rejected\)/);
    const { rows } = await t.db.pool.query("select 1 from outbox where thread_id = $1", [threadId]);
    expect(rows).toEqual([]);
  });

  it("takes ids by their first 8 characters, shows ages for people, and prints commands that run as printed", async () => {
    const bin = fs.mkdtempSync(path.join(os.tmpdir(), "keel-bin-"));
    fs.writeFileSync(path.join(bin, "keel"), "#!/bin/sh\n", { mode: 0o755 });
    const onPath = { ...env, PATH: `${bin}${path.delimiter}${process.env.PATH ?? ""}` };
    const notOnPath = { ...env, npm_lifecycle_event: "", npm_command: "" };
    const waiting = await keel(
      ["run", "--no-input", "Email oncall@harbor.example that the drill moves to Monday"],
      onPath,
    );
    expect(waiting.code).toBe(3);
    const threadId = /Task: (\S+)/.exec(waiting.stdout)![1]!;
    expect(waiting.stdout).toContain(`\n  keel resume ${threadId} --approve`);
    const status = await keel(["status", threadId.slice(0, 8)], notOnPath);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(new RegExp(`task ${threadId}: waiting_for_approval .*created \\d+ s ago`));
    const other = await keel(
      ["run", "--no-input", "Email ops@harbor.example that the drill is on"],
      notOnPath,
    );
    expect(other.stdout).toMatch(/\n {2}npx keel resume \S+ --approve/);
    const approvals = json<{ id: string; task_id: string }[]>(await keel(["approvals", "--json"], env));
    const approval = approvals.find((a) => a.task_id === threadId)!;
    const approved = await keel(["approve", approval.id.slice(0, 8), "--reviewer", "dana"], env);
    expect(approved.code, approved.stderr).toBe(0);
    expect(approved.stdout).toContain(`approval ${approval.id} approved by dana`);
    const unknown = await keel(["status", "00000000"], env);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/No task id starts with 00000000/);
    const malformed = await keel(["status", "3f2b"], env);
    expect(malformed.code).toBe(2);
    expect(malformed.stderr).toMatch(/their first 8 characters are enough/);
  });

  it("prints its version, and ends quietly when the reader of its output goes away", async () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(import.meta.dirname, "../../package.json"), "utf8")) as {
      version: string;
    };
    const version = await keel(["--version"], env);
    expect([version.code, version.stdout.trim()]).toEqual([0, pkg.version]);
    // As `keel samples | head -0` does: the pipe is closed before Keel writes to it.
    const child = spawn(process.execPath, [KEEL_BIN, "samples"], {
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stdout.destroy();
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const [code] = (await once(child, "close")) as [number | null];
    expect(stderr).not.toMatch(/EPIPE|Error/);
    expect(code).toBe(0);
  });

  it("answers at the interactive prompt when a terminal is attached", async () => {
    // `script` gives the child a pseudo-terminal, so keel sees a TTY and asks.
    const command = `node ${JSON.stringify(path.resolve("bin/keel.js"))} run "Email oncall@harbor.example that the drill moves to Friday"`;
    const result = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const child = spawn("script", ["-qfec", command, "/dev/null"], { env: { ...process.env, ...env } });
      let out = "";
      child.stdout.on("data", (d: Buffer) => {
        out += d.toString();
        if (/\[a\/e\/r\]/.test(out) && !out.includes("SENT-E")) {
          out += "SENT-E";
          child.stdin.write("e\n");
        } else if (/Changed arguments as JSON/.test(out) && !out.includes("SENT-JSON")) {
          out += "SENT-JSON";
          child.stdin.write('{"subject": "Drill on Friday"}\n');
        }
      });
      child.on("close", (code) => resolve({ code, out }));
    });
    expect(result.code).toBe(0);
    expect(result.out).toMatch(/Sent "Drill on Friday" to oncall@harbor.example/);
  });
});

describe("bad input exits 2 and stores nothing", () => {
  it.each([
    ["an empty request", ["run", ""], /request is empty/],
    ["no request at all", ["run"], /Say what you want done/],
    ["an unknown sample", ["run", "--sample", "99"], /no sample 99/],
    [
      "an unknown thread id",
      ["resume", "00000000-0000-0000-0000-000000000000", "--approve"],
      /No run has thread id/,
    ],
    ["a non-JSON --edit", ["resume", "x", "--edit", "{subject: oops"], /--edit must be a JSON object/],
    ["--approve with --reject", ["resume", "x", "--approve", "--reject"], /not both/],
    ["resume of an unknown task", ["resume", "x"], /No run has thread id x/],
    ["an unknown command", ["launch"], /unknown command/],
  ])("%s", async (_label, args, message) => {
    const result = await keel(args, env);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(message);
  });

  it("an over-long request, with the limit in the message and a JSON error object", async () => {
    const result = await keel(["run", "--json", "x".repeat(50)], { ...env, KEEL_MAX_REQUEST_CHARS: "20" });
    expect(result.code).toBe(2);
    expect(json(result)).toMatchObject({
      status: "error",
      error: { code: "invalid_request", name: "InputError" },
    });
    expect(result.stderr).toMatch(/50 characters long; the limit is 20/);
  });

  it.each([
    ["list", ["list"]],
    ["status", ["status", "00000000-0000-0000-0000-000000000000"]],
    ["worker", ["worker"]],
  ])(
    "a malformed KEEL_* variable names the variable and exits 2 without a stack trace (%s)",
    async (_l, args) => {
      const result = await keel(args, { ...env, KEEL_LEASE_SECONDS: "soon" });
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(/^keel: InputError: KEEL_LEASE_SECONDS=soon is not a positive number/);
      expect(result.stderr).not.toMatch(/\n\s+at /);
    },
  );

  it("an edit that breaks the tool's contract leaves the run waiting", async () => {
    const first = json<RunJson>(await keel(["run", "--sample", "5", "--no-input", "--json"], env));
    const bad = await keel(["resume", first.thread_id, "--edit", '{"to": "nobody"}'], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/edited arguments for send_message are not valid: to: Invalid email/);
    const still = await keel(["resume", first.thread_id, "--approve", "--json"], env);
    expect(still.code).toBe(0);
    expect(json<RunJson>(still).status).toBe("done");
  });
});

describe("embedded Postgres (no DATABASE_URL)", () => {
  it("is started on demand, shared by two processes starting at once, and stopped when the last one leaves", async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "keel-embedded-"));
    fs.chmodSync(dataDir, 0o755);
    const local = { KEEL_DATA_DIR: dataDir };
    try {
      const [a, b] = await Promise.all([
        keel(["run", "--sample", "3", "--json"], local),
        keel(["run", "--sample", "4", "--json"], local),
      ]);
      expect([a.code, b.code]).toEqual([0, 0]);
      expect(json<RunJson>(a).final_answer).toContain("[t1]");
      expect(json<RunJson>(b).status).toBe("done");
      expect(embeddedStatus(dataDir).running).toBe(false);
      // The next process finds the same data: the first run's checkpoint is still there.
      const again = await keel(["resume", json<RunJson>(a).task_id, "--approve"], local);
      expect(again.code).toBe(2);
      expect(again.stderr).toMatch(/is not waiting for approval \(it is done\)/);
      expect(embeddedStatus(dataDir).running).toBe(false);
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it("keeps a command's exit code on the run that first creates the server", async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "keel-embedded-"));
    fs.chmodSync(dataDir, 0o755);
    try {
      const result = await keel(["status", "00000000-0000-4000-8000-000000000000"], {
        KEEL_DATA_DIR: dataDir,
      });
      expect(result.stderr).toMatch(/No task has id 00000000-0000-4000-8000-000000000000/);
      expect(result.code).toBe(2);
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
