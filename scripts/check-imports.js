#!/usr/bin/env node
// Keel's folder rule: who may import whom (docs/ARCHITECTURE.md, "Folders"). Cycles between files are checked
// by dpdm (npm run check:cycles); this checks the direction of every import between top-level folders.
import fs from "node:fs";
import path from "node:path";

const root = path.resolve(import.meta.dirname, "..");
const ALLOWED = {
  core: [],
  policy: ["core"],
  models: ["core"],
  checkpoints: ["core"],
  observability: ["core", "policy"],
  tools: ["core", "policy", "observability"],
  agents: ["core", "tools", "models"],
  graphs: ["core", "agents", "tools", "policy", "models", "observability", "checkpoints"],
  runtime: ["core", "graphs", "checkpoints", "observability", "policy"],
  reports: ["core", "graphs", "runtime", "observability", "policy"],
  evals: [
    "core",
    "runtime",
    "graphs",
    "observability",
    "agents",
    "policy",
    "checkpoints",
    "models",
    "reports",
  ],
  server: ["core", "policy", "runtime", "observability", "reports"],
  cli: [
    "core",
    "policy",
    "models",
    "checkpoints",
    "observability",
    "tools",
    "agents",
    "graphs",
    "runtime",
    "evals",
    "reports",
    "server",
  ],
};
// The contracts are the shared language: any folder may import their types (type-only imports carry no code).
const TYPE_ONLY_ANYWHERE = ["agents/contracts.ts"];

function* files(dir) {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) yield* files(full);
    else if (entry.name.endsWith(".ts")) yield full;
  }
}

const problems = [];
for (const folder of Object.keys(ALLOWED)) {
  const dir = path.join(root, folder);
  if (!fs.existsSync(dir)) continue;
  for (const file of files(dir)) {
    const source = fs.readFileSync(file, "utf8");
    for (const match of source.matchAll(/^(import|export)\s+(type\s+)?[^;]*?from\s+["'](\.[^"']+)["']/gm)) {
      const target = path.resolve(path.dirname(file), match[3]).replace(/\.js$/, ".ts");
      const relative = path.relative(root, target);
      const targetFolder = relative.split(path.sep)[0];
      if (targetFolder === folder || relative.startsWith("..")) continue;
      const typeOnly = Boolean(match[2]);
      const excepted = typeOnly && TYPE_ONLY_ANYWHERE.includes(relative);
      if (!ALLOWED[folder].includes(targetFolder) && !excepted) {
        problems.push(
          `${path.relative(root, file)} imports ${relative}: ${folder}/ may not import ${targetFolder}/`,
        );
      }
    }
  }
}
if (problems.length > 0) {
  console.error(`Folder rule broken (${problems.length}):\n  ${problems.join("\n  ")}`);
  process.exit(1);
}
console.log("check-imports: every import follows the folder rule");
