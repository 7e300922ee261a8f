import type pg from "pg";
import { InputError } from "../core/errors.js";
import type { GraphRegistry } from "../runtime/registry.js";
import { getRelease, releaseLabel } from "../runtime/releases/store.js";

/**
 * Releases as the Agent Server API shows them: every release is an assistant of Keel's orchestrator whose versions
 * are the release's versions (the database makes them, migration 26), and any assistant of the orchestrator may
 * name a release in its metadata. A run on such an assistant runs on the release its version in force names.
 */

/**
 * An assistant's metadata with the release it names resolved: `release` (NAME, NAME@VERSION or an id) or
 * `release_id` in what the caller sent becomes both `release` (NAME@VERSION) and `release_id`. A release that does
 * not exist, or a graph that is not Keel's orchestrator, is refused, saying what to do.
 */
export async function withRelease(
  db: pg.Pool | pg.PoolClient,
  graphs: GraphRegistry,
  graphId: string,
  sent: Record<string, unknown> | undefined,
  merged: Record<string, unknown>,
): Promise<Record<string, unknown>> {
  const ref = sent?.release ?? sent?.release_id;
  if (ref === undefined || ref === null) return merged;
  if (typeof ref !== "string")
    throw new InputError(
      `metadata.release is ${JSON.stringify(ref)}; give a release as NAME, NAME@VERSION or its id (keel release list shows them).`,
    );
  if (!(await graphs.runsOnRelease(graphId)))
    throw new InputError(
      `Graph "${graphId}" is not Keel's orchestrator, and releases describe only the orchestrator: name a release on an assistant of it, or remove metadata.release.`,
    );
  const release = await getRelease(db, ref);
  return { ...merged, release: releaseLabel(release), release_id: release.id };
}
