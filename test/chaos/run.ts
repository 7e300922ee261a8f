import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import prettier from "prettier";
import { PROFILES, resultTable, runChaos } from "./harness.js";

/**
 * `npm run chaos [-- --profile short|full] [--seed N] [--json] [--write-docs]`: runs the chaos harness, prints
 * its table and exits 1 on any invariant violation. `--write-docs` puts the table into docs/RELIABILITY.md.
 */
const { values } = parseArgs({
  options: {
    profile: { type: "string", default: "full" },
    seed: { type: "string" },
    postgres: { type: "string", default: "embedded" },
    json: { type: "boolean", default: false },
    "write-docs": { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (values.help) {
  console.log(`Usage: npm run chaos -- [--profile short|full] [--seed N] [--postgres embedded|debian15] [--json] [--write-docs]

Runs requests on worker processes that are SIGKILLed at random moments and right after effects commit, against
a model server on loopback that injects faults, while Postgres is restarted under them; then checks the
invariants (no acknowledged task lost, no effect twice, every task ended, no approved effect undone by a crash,
every failure named). Exits 1 on any violation. Bounded: the full profile stops within 15 minutes.
--postgres debian15 runs it on a scratch cluster of Debian's PostgreSQL 15 instead of the embedded server.
--write-docs adds the table to docs/RELIABILITY.md under the server's heading.`);
  process.exit(0);
}
const base = PROFILES[values.profile as keyof typeof PROFILES];
if (!base) {
  console.error(`Unknown profile "${values.profile}"; use short or full.`);
  process.exit(2);
}
const seed = values.seed === undefined ? base.seed : Number(values.seed);
if (!Number.isInteger(seed)) {
  console.error(`--seed must be an integer, not "${values.seed}".`);
  process.exit(2);
}
if (values.postgres !== "embedded" && values.postgres !== "debian15") {
  console.error(`--postgres must be embedded or debian15, not "${values.postgres}".`);
  process.exit(2);
}
const result = await runChaos({ ...base, seed, postgres: values.postgres }, (line) =>
  console.error(`chaos: ${line}`),
);
const table = resultTable(result);
if (values.json) console.log(JSON.stringify({ ...result, history: undefined }, null, 2));
else console.log(table);
for (const v of result.violations) console.error(`violation: ${v}`);
if (values["write-docs"]) {
  const file = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../docs/RELIABILITY.md");
  const doc = fs.readFileSync(file, "utf8");
  const start = `<!-- chaos-results ${values.postgres} -->`;
  const end = `<!-- /chaos-results ${values.postgres} -->`;
  const at = doc.indexOf(start);
  const until = doc.indexOf(end);
  if (at < 0 || until < 0) throw new Error(`${file} has no ${start} … ${end} block`);
  const updated = `${doc.slice(0, at + start.length)}\n\n${table}\n\n${doc.slice(until)}`;
  fs.writeFileSync(file, await prettier.format(updated, { filepath: file }));
}
process.exit(result.violations.length > 0 ? 1 : 0);
