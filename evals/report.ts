import fs from "node:fs";
import path from "node:path";
import type { CaseResult, Summary } from "./score.js";

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
const esc = (s: string) =>
  s.replace(
    /[&<>"']/g,
    (ch) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[ch]!,
  );

/** A horizontal bar chart as inline SVG: no script, no network, so the page works anywhere it is opened. */
function barChart(
  id: string,
  title: string,
  rows: { label: string; value: number; text: string }[],
  max: number,
) {
  const h = 22;
  const width = 560;
  const labelW = 170;
  const bars = rows
    .map((r, i) => {
      const w = max > 0 ? Math.max(1, ((width - labelW - 130) * r.value) / max) : 1;
      return `<g transform="translate(0,${i * h})"><text x="${labelW - 6}" y="15" text-anchor="end">${esc(r.label)}</text><rect class="bar" x="${labelW}" y="3" width="${w.toFixed(1)}" height="${h - 6}"/><text x="${(labelW + w + 6).toFixed(1)}" y="15">${esc(r.text)}</text></g>`;
    })
    .join("");
  return `<figure id="${id}" class="chart"><figcaption>${esc(title)}</figcaption><svg role="img" aria-label="${esc(title)}" width="${width}" height="${rows.length * h + 4}" viewBox="0 0 ${width} ${rows.length * h + 4}">${bars}</svg></figure>`;
}

/** Latency distribution: counts per bucket of case latency. */
function histogram(latencies: number[]) {
  const edges = [250, 500, 1000, 2000, 5000, 10000, Infinity];
  const labels = ["< 0.25 s", "0.25–0.5 s", "0.5–1 s", "1–2 s", "2–5 s", "5–10 s", "≥ 10 s"];
  const counts = edges.map(
    (edge, i) => latencies.filter((l) => l < edge && (i === 0 || l >= edges[i - 1]!)).length,
  );
  return barChart(
    "chart-latency",
    "Latency distribution (cases per bucket)",
    labels.map((label, i) => ({ label, value: counts[i]!, text: String(counts[i]) })),
    Math.max(...counts),
  );
}

export function renderMarkdown(summary: Summary, results: CaseResult[], regressions: string[]): string {
  const q = summary.quality;
  const lines = [
    `# Keel eval: ${summary.dataset}${summary.filter ? ` (tag ${summary.filter})` : ""}${summary.release ? ` on release ${summary.release}` : ""}`,
    "",
    `**${summary.passed} / ${summary.cases} passed (${pct(summary.pass_rate)})** · p50 ${summary.latency_ms.p50} ms · p95 ${summary.latency_ms.p95} ms · cost $${summary.cost_usd.total.toFixed(4)} · ${summary.tokens} tokens`,
    "",
    "| agent | passed | pass rate |",
    "|---|---|---|",
    ...Object.entries(summary.by_agent).map(
      ([k, g]) => `| ${k} | ${g.pass}/${g.total} | ${pct(g.pass_rate)} |`,
    ),
    "",
    "| tag | passed | pass rate |",
    "|---|---|---|",
    ...Object.entries(summary.by_tag).map(
      ([k, g]) => `| ${k} | ${g.pass}/${g.total} | ${pct(g.pass_rate)} |`,
    ),
    "",
    "Trajectory quality:",
    `- unnecessary tool calls per run: ${q.unnecessary_tool_calls_per_run.toFixed(2)}`,
    `- invalid argument rate: ${pct(q.invalid_argument_rate)}`,
    `- unsafe writes blocked: ${q.unsafe_writes_blocked}`,
    `- handoff failure rate: ${pct(q.handoff_failure_rate)}`,
    `- approvals requested / expected: ${q.approvals_requested} / ${q.approvals_expected}`,
    "",
  ];
  if (summary.judge.enabled) {
    lines.push(
      "## LLM-as-judge (reported apart; not part of pass/fail)",
      "",
      `${summary.judge.passed} / ${summary.judge.cases} judged accurate (${pct(summary.judge.pass_rate)})`,
      "",
      ...results.filter((r) => r.judge && !r.judge.score).map((r) => `- ${r.id}: ${r.judge!.comment}`),
      "",
    );
  }
  if (regressions.length)
    lines.push("## Regressions against the baseline", "", ...regressions.map((r) => `- ${r}`), "");
  const failing = results.filter((r) => !r.pass);
  lines.push(`## Failing cases (${failing.length})`, "");
  for (const r of failing) {
    lines.push(`### ${r.id}`, "", `> ${r.request}`, "");
    for (const c of r.checks.filter((x) => !x.pass)) lines.push(`- ✗ ${c.name}: ${c.detail}`);
    lines.push(
      `- trajectory expected: ${r.diff.expected.join(" → ") || "—"}`,
      `- trajectory actual: ${r.diff.actual.join(" → ") || "—"}`,
      "",
    );
  }
  return `${lines.join("\n")}\n`;
}

export function renderHtml(summary: Summary, results: CaseResult[], regressions: string[]): string {
  const agentRows = Object.entries(summary.by_agent).map(([label, g]) => ({
    label,
    value: g.pass_rate,
    text: `${pct(g.pass_rate)} (${g.pass}/${g.total})`,
  }));
  const tagRows = Object.entries(summary.by_tag).map(([label, g]) => ({
    label,
    value: g.pass_rate,
    text: `${pct(g.pass_rate)} (${g.pass}/${g.total})`,
  }));
  const costRows = results.map((r) => ({
    label: r.id,
    value: r.run.cost_usd,
    text: `$${r.run.cost_usd.toFixed(5)} · ${r.run.tokens} tok`,
  }));
  const failing = results.filter((r) => !r.pass);
  const diffCell = (expected: string[], actual: string[], marked: string[], cls: string) => {
    const left = [...marked];
    return expected.length || actual.length
      ? (cls === "missing" ? expected : actual)
          .map((t) => {
            const i = left.indexOf(t);
            if (i >= 0) {
              left.splice(i, 1);
              return `<span class="${cls}">${esc(t)}</span>`;
            }
            return esc(t);
          })
          .join(" → ")
      : "—";
  };
  const rows = failing
    .map(
      (r) =>
        `<tr class="failing-case" data-case="${esc(r.id)}"><td><code>${esc(r.id)}</code><div class="req">${esc(r.request)}</div></td><td>${r.checks
          .filter((c) => !c.pass)
          .map((c) => `<div>✗ <b>${esc(c.name)}</b>: ${esc(c.detail)}</div>`)
          .join(
            "",
          )}</td><td class="diff">${diffCell(r.diff.expected, r.diff.actual, r.diff.missing, "missing")}</td><td class="diff">${diffCell(r.diff.expected, r.diff.actual, r.diff.extra, "extra")}</td></tr>`,
    )
    .join("\n");
  const q = summary.quality;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Keel eval: ${esc(summary.dataset)}</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#1d2430;max-width:1100px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px}
.kpis{display:flex;gap:14px;flex-wrap:wrap}.kpi{border:1px solid #d0d7de;border-radius:6px;padding:8px 12px}
.kpi b{display:block;font-size:20px}.charts{display:flex;flex-wrap:wrap;gap:20px}
.chart svg text{font-size:12px;fill:#1d2430}.bar{fill:#3b6fd4}figcaption{font-weight:600;margin-bottom:4px}
table{border-collapse:collapse;width:100%}td,th{border:1px solid #d0d7de;padding:6px;vertical-align:top;text-align:left}
.req{color:#57606a;font-size:12px}.missing{background:#ffd7d5;text-decoration:line-through}.extra{background:#fff1c2}
.regressions li{color:#a40e26}
</style></head><body>
<h1>Keel eval: ${esc(summary.dataset)}${summary.filter ? ` (tag ${esc(summary.filter)})` : ""}${summary.release ? ` on release ${esc(summary.release)}` : ""}</h1>
<div class="kpis">
<div class="kpi" id="kpi-pass">pass rate<b>${pct(summary.pass_rate)}</b>${summary.passed}/${summary.cases} cases</div>
<div class="kpi">latency p50 / p95<b>${summary.latency_ms.p50} / ${summary.latency_ms.p95} ms</b></div>
<div class="kpi">cost<b>$${summary.cost_usd.total.toFixed(4)}</b>${summary.tokens} tokens</div>
<div class="kpi">unsafe writes blocked<b>${q.unsafe_writes_blocked}</b></div>
<div class="kpi">approvals requested / expected<b>${q.approvals_requested} / ${q.approvals_expected}</b></div>
<div class="kpi">invalid argument rate<b>${pct(q.invalid_argument_rate)}</b></div>
<div class="kpi">unnecessary calls per run<b>${q.unnecessary_tool_calls_per_run.toFixed(2)}</b></div>
<div class="kpi">handoff failure rate<b>${pct(q.handoff_failure_rate)}</b></div>
</div>
${regressions.length ? `<h2>Regressions against the baseline</h2><ul class="regressions" id="regressions">${regressions.map((r) => `<li>${esc(r)}</li>`).join("")}</ul>` : ""}
${summary.judge.enabled ? `<h2>LLM-as-judge</h2><p id="judge">Reported apart, not part of pass/fail: ${summary.judge.passed} / ${summary.judge.cases} judged accurate (${pct(summary.judge.pass_rate)}).</p>` : ""}
<h2>Charts</h2>
<div class="charts">
${barChart("chart-agents", "Pass rate per agent", agentRows, 1)}
${barChart("chart-tags", "Pass rate per tag", tagRows, 1)}
${histogram(results.map((r) => r.run.latency_ms))}
${barChart("chart-cost", "Cost per case", costRows, Math.max(...costRows.map((r) => r.value), 0))}
</div>
<h2>Failing cases (${failing.length})</h2>
<table id="failing"><thead><tr><th>case</th><th>failed checks</th><th>expected trajectory (missing struck)</th><th>actual trajectory (extra marked)</th></tr></thead>
<tbody>
${rows || `<tr><td colspan="4">none</td></tr>`}
</tbody></table>
</body></html>
`;
}

/** Writes results.jsonl, summary.json, report.md and report.html into `dir`. */
export function writeReports(
  dir: string,
  summary: Summary,
  results: CaseResult[],
  regressions: string[],
): string[] {
  fs.mkdirSync(dir, { recursive: true });
  const files = {
    "results.jsonl": results.map((r) => JSON.stringify(r)).join("\n") + "\n",
    "summary.json": `${JSON.stringify({ ...summary, regressions }, null, 2)}\n`,
    "report.md": renderMarkdown(summary, results, regressions),
    "report.html": renderHtml(summary, results, regressions),
  };
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
  return Object.keys(files).map((f) => path.join(dir, f));
}
