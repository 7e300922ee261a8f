import { randomUUID } from "node:crypto";
import type { Client } from "langsmith";
import type { Dataset } from "./dataset.js";
import type { CaseResult, Summary } from "./score.js";

export interface Upload {
  dataset: string;
  experiment: string;
  examples_created: number;
  runs: number;
}

/**
 * Uploads an eval run to LangSmith as an experiment on a dataset: the dataset `keel-<name>` holds one example
 * per case (created once, matched by case id after that); the experiment is a project that references it, with
 * one run per case and feedback for the verdict and each kind of check.
 */
export async function uploadExperiment(
  client: Client,
  dataset: Dataset,
  summary: Summary,
  results: CaseResult[],
  now = new Date(),
): Promise<Upload> {
  const name = `keel-${dataset.name}`;
  const ds = (await client.hasDataset({ datasetName: name }))
    ? await client.readDataset({ datasetName: name })
    : await client.createDataset(name, {
        description: `Keel golden dataset ${dataset.name} (${dataset.path})`,
      });
  const examples = new Map<string, string>();
  for await (const example of client.listExamples({ datasetId: ds.id })) {
    const id = (example.metadata as { case_id?: string } | undefined)?.case_id;
    if (id) examples.set(id, example.id);
  }
  const missing = dataset.cases.filter((c) => !examples.has(c.id));
  if (missing.length) {
    const created = await client.createExamples(
      missing.map((c) => ({
        dataset_id: ds.id,
        inputs: { request: c.request },
        outputs: { expect: c.expect },
        metadata: { case_id: c.id, tags: c.tags },
      })),
    );
    created.forEach((example, i) => examples.set(missing[i]!.id, example.id));
  }
  const experiment = `${name}-${now.toISOString().replace(/[:.]/g, "-")}`;
  await client.createProject({
    projectName: experiment,
    referenceDatasetId: ds.id,
    metadata: { pass_rate: summary.pass_rate, cases: summary.cases, filter: summary.filter },
  });
  const runIds = new Map<string, string>();
  for (const r of results) {
    const id = randomUUID();
    runIds.set(r.id, id);
    const end = now.getTime();
    await client.createRun({
      id,
      name: `keel eval ${r.id}`,
      run_type: "chain",
      inputs: { request: r.request },
      outputs: { status: r.run.status, answer: r.run.answer, tool_calls: r.run.calls.map((c) => c.tool) },
      project_name: experiment,
      reference_example_id: examples.get(r.id),
      start_time: end - r.run.latency_ms,
      end_time: end,
      extra: { metadata: { case_id: r.id, task_id: r.run.task_id } },
    });
  }
  await client.awaitPendingTraceBatches();
  for (const r of results) {
    const runId = runIds.get(r.id)!;
    await client.createFeedback(runId, "pass", { score: r.pass ? 1 : 0 });
    for (const kind of [...new Set(r.checks.map((c) => c.name))]) {
      const ok = r.checks.filter((c) => c.name === kind).every((c) => c.pass);
      await client.createFeedback(runId, kind, { score: ok ? 1 : 0 });
    }
    if (r.judge)
      await client.createFeedback(runId, "llm_judge", {
        score: r.judge.score ? 1 : 0,
        comment: r.judge.comment,
      });
  }
  return { dataset: name, experiment, examples_created: missing.length, runs: results.length };
}
