import type { BaseCheckpointSaver } from "@langchain/langgraph-checkpoint";
import type { Database } from "../../checkpoints/database.js";
import type { KeelConfig } from "../../core/config.js";
import { behaviourDeps, type GraphDeps } from "../../graphs/deps.js";
import { Runner } from "../runner.js";
import { specFromConfig } from "./spec.js";
import { CONFIG_RELEASE, createRelease, getRelease, releaseLabel, type ReleaseRow } from "./store.js";

/** A release and the runner that runs its tasks. */
interface ReleaseRunner {
  release: ReleaseRow;
  runner: Runner;
}

/** Runners kept at once, one per release: a worker rarely serves more than a baseline and a candidate. */
const MAX_RUNNERS = 8;

/**
 * A worker's runners, one per release its tasks run on, all on the worker's one (fenced) checkpointer. A task
 * with no release runs on the release of this process's own configuration, which is recorded the first time.
 */
export class ReleaseRunners {
  private own?: Promise<ReleaseRow>;
  /** The own release's NAME@VERSION once it is recorded (breakers name it). */
  private ownLabel = "";
  private readonly rows = new Map<string, ReleaseRow>();
  /** By release id: the runner being built, and once built the runner itself (what breakers() reads). */
  private readonly runners = new Map<string, { pending: Promise<ReleaseRunner>; built?: ReleaseRunner }>();

  constructor(
    private readonly db: Database,
    private readonly config: KeelConfig,
    /** The runner of this process's configuration (and of whatever tests inject). */
    private readonly base: Runner,
    private readonly saver: BaseCheckpointSaver,
    /** What the process was started with beyond its configuration: scripted models in tests, fault injection. */
    private readonly injected: Partial<GraphDeps> = {},
    private readonly createdBy = "keel worker",
  ) {}

  /** The release of this process's configuration: its model and limits, its policy, its prompts. */
  ownRelease(): Promise<ReleaseRow> {
    this.own ??= (async () => {
      const deps = this.base.deps;
      const spec = specFromConfig({ ...this.config, limits: deps.limits }, deps.policy);
      spec.prompts = { ...spec.prompts, ...deps.prompts };
      return (
        await createRelease(this.db.pool, {
          name: CONFIG_RELEASE,
          spec,
          description: "The configuration of the Keel process that first ran a task with no release",
          source: "config",
          createdBy: this.createdBy,
        })
      ).release;
    })();
    // A failed attempt (the database was away) is tried again next time rather than remembered.
    this.own.then(
      (own) => (this.ownLabel = releaseLabel(own)),
      () => (this.own = undefined),
    );
    return this.own;
  }

  /** A release's row (read once): what spans and logs name it by, without building its runner. */
  async release(releaseId: string): Promise<ReleaseRow> {
    const own = await this.ownRelease();
    if (releaseId === own.id) return own;
    let row = this.rows.get(releaseId);
    if (!row) {
      row = await getRelease(this.db.pool, releaseId);
      this.rows.set(releaseId, row);
      if (this.rows.size > MAX_RUNNERS) this.rows.delete(this.rows.keys().next().value!);
    }
    return row;
  }

  /** A release and its runner: this process's own for its own release, else one built from the release. */
  async runnerFor(releaseId: string): Promise<ReleaseRunner> {
    const own = await this.ownRelease();
    if (releaseId === own.id) return { release: own, runner: this.base };
    let entry = this.runners.get(releaseId);
    if (!entry) {
      const made: { pending: Promise<ReleaseRunner>; built?: ReleaseRunner } = {
        pending: this.build(releaseId),
      };
      made.pending.then(
        (built) => (made.built = built),
        () => this.runners.get(releaseId) === made && this.runners.delete(releaseId),
      );
      this.runners.set(releaseId, made);
      if (this.runners.size > MAX_RUNNERS) this.runners.delete(this.runners.keys().next().value!);
      entry = made;
    }
    return entry.pending;
  }

  /**
   * The circuit breakers of every runner, each named with its release: a candidate's failing endpoint opens its
   * own breaker, not the baseline's. The process's own runner is named once its release is recorded.
   */
  breakers(): { name: string; state: string; release: string }[] {
    return [
      ...this.base.deps.dependencies.list().map((b) => ({ ...b, release: this.ownLabel })),
      ...[...this.runners.values()].flatMap(({ built }) =>
        built
          ? built.runner.deps.dependencies.list().map((b) => ({ ...b, release: releaseLabel(built.release) }))
          : [],
      ),
    ];
  }

  private async build(releaseId: string): Promise<ReleaseRunner> {
    const release = await this.release(releaseId);
    // The release decides the behaviour; what the process injected (tests' scripted models) still applies.
    const { policy: _policy, limits: _limits, prompts: _prompts, ...injected } = this.injected;
    const runner = await Runner.withSaver(this.db, this.config, () => this.saver, {
      ...behaviourDeps(this.config, release.spec, releaseLabel(release)),
      ...injected,
    });
    return { release, runner };
  }
}
