import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import type { BaseCheckpointSaver, BaseStore, Pregel } from "@langchain/langgraph";
import {
  getRuntimeGraphSchema,
  getStaticGraphSchema,
  type GraphSchema,
} from "@langchain/langgraph-api/schema";
import { v5 as uuidv5 } from "uuid";
import { InputError, NotFoundError, WiringError } from "../core/errors.js";
import { isOrchestrator } from "../graphs/build-orchestrator.js";

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- any graph of any state: the server only runs it
export type ServedGraph = Pregel<any, any>;

/**
 * The UUID v5 namespace LangGraph's servers derive a graph's assistant id in: with it, a graph's assistant has the
 * same id on keel serve as on `langgraph dev`, so scripts and Studio links that name it keep working.
 */
const GRAPH_NAMESPACE = "6ba7b821-9dad-11d1-80b4-00c04fd430c8";

/**
 * Gives the graphs of this process the logger LangGraph's SDK hands out (`getLogger()` from
 * `@langchain/langgraph-sdk/logging`), as LangGraph's own servers register one: a user's graph that logs through
 * it logs into Keel's structured log instead of failing.
 */
export function registerGraphLogger(logger: object): void {
  (globalThis as Record<symbol, unknown>)[Symbol.for("langgraph.api.sdk-logger")] ??= logger;
}

/** A `./path/to/file.ts:export` of langgraph.json (the export defaults to `default`). */
const SPEC = /^[^:]+(:[A-Za-z_$][\w$]*)?$/;

/** A spec's file (relative to langgraph.json's folder `dir`) and export name. */
function sourceOf(dir: string, spec: string): { file: string; name: string } {
  const [file, name = "default"] = spec.split(":");
  return { file: path.resolve(dir, file!), name };
}

/** The id of the assistant keel serve makes for a graph when it starts. */
export const assistantIdOf = (graphId: string): string => uuidv5(graphId, GRAPH_NAMESPACE);

/** A graph's JSON schemas, as the Agent Server API answers `/assistants/{id}/schemas`. */
export interface GraphSchemas {
  input: unknown;
  output: unknown;
  state: unknown;
  config: unknown;
}

/**
 * The graphs of a `langgraph.json`, Keel's or anyone's: each entry is `./file.ts:export`, whose export is a
 * compiled graph, a graph builder (compiled here), or a function returning either. Each is imported on first use.
 */
type GraphFactory = (config: object) => unknown;

export class GraphRegistry {
  private readonly loaded = new Map<string, Promise<{ graph: ServedGraph; factory?: GraphFactory }>>();
  private readonly parsed = new Map<string, Promise<Record<string, GraphSchema>>>();
  private saver?: BaseCheckpointSaver;
  private store?: BaseStore;

  private constructor(
    readonly file: string,
    private readonly specs: Record<string, string>,
    /** The project's other parts LangGraph's servers serve: generative UI bundles and its own HTTP routes. */
    readonly project: ProjectParts,
  ) {}

  /** Reads `langgraph.json` (or the file given); a missing or malformed file is an InputError saying what to fix. */
  static open(file: string): GraphRegistry {
    const where = path.resolve(file);
    if (!fs.existsSync(where))
      throw new InputError(
        `There is no ${where}: keel serve serves the graphs a langgraph.json lists; give its path with --config.`,
      );
    let parsed: unknown;
    try {
      parsed = JSON.parse(fs.readFileSync(where, "utf8"));
    } catch (error) {
      throw new InputError(`${where} is not JSON (${(error as Error).message}); fix it and start again.`);
    }
    const graphs = (parsed as { graphs?: unknown } | null)?.graphs;
    if (!graphs || typeof graphs !== "object" || Object.keys(graphs).length === 0)
      throw new InputError(
        `${where} lists no graphs: give "graphs": {"name": "./path/to/file.ts:export"}, as LangGraph's own servers read it.`,
      );
    for (const [id, spec] of Object.entries(graphs as Record<string, unknown>)) {
      if (typeof spec !== "string" || !SPEC.test(spec))
        throw new InputError(
          `${where}: graph "${id}" is ${JSON.stringify(spec)}; give "./path/to/file.ts:export" (the export defaults to "default").`,
        );
    }
    return new GraphRegistry(where, graphs as Record<string, string>, projectParts(where, parsed));
  }

  /** The folder langgraph.json is in: its paths are relative to it. */
  get dir(): string {
    return path.dirname(this.file);
  }

  /** What a `./file.ts:export` of langgraph.json exports (awaited, as a promise export may be). */
  async importExport(spec: string): Promise<unknown> {
    const { file, name } = sourceOf(this.dir, spec);
    const module = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
    if (!(name in module))
      throw new InputError(
        `${spec} (in ${this.file}) names no export "${name}"; export it, or fix the name.`,
      );
    return await module[name];
  }

  /**
   * The checkpointer (and store) every graph runs with in this process, as LangGraph's own servers attach theirs:
   * the graphs are compiled without one, and the worker's is fenced.
   */
  attach(parts: { checkpointer?: BaseCheckpointSaver; store?: BaseStore }): this {
    this.saver = parts.checkpointer ?? this.saver;
    this.store = parts.store ?? this.store;
    return this;
  }

  ids(): string[] {
    return Object.keys(this.specs);
  }

  has(graphId: string): boolean {
    return Object.hasOwn(this.specs, graphId);
  }

  /**
   * The graph, imported (once) from its file. A graph exported as a function (a factory) is made again for each
   * run with the run's configuration, as LangGraph's servers make it; without one, with an empty configuration.
   */
  async get(graphId: string, config?: { configurable?: Record<string, unknown> }): Promise<ServedGraph> {
    if (!this.has(graphId))
      throw new NotFoundError(
        `There is no graph "${graphId}"; ${path.basename(this.file)} lists ${this.ids().join(", ")}.`,
      );
    let entry = this.loaded.get(graphId);
    if (!entry) {
      entry = this.load(graphId);
      // A graph that failed to load is tried again next time (after the file is fixed, say).
      entry.catch(() => this.loaded.delete(graphId));
      this.loaded.set(graphId, entry);
    }
    const loaded = await entry;
    const graph = loaded.factory && config ? await this.build(graphId, loaded.factory, config) : loaded.graph;
    if (this.saver) graph.checkpointer = this.saver;
    if (this.store) graph.store = this.store;
    return graph;
  }

  /**
   * Whether runs of a graph run on a release: it is Keel's orchestrator (whatever this file calls it). A graph
   * that fails to load is not; its run fails when it is driven, saying why.
   */
  async runsOnRelease(graphId: string): Promise<boolean> {
    if (!this.has(graphId)) return false;
    return this.get(graphId).then(isOrchestrator, () => false);
  }

  private async load(graphId: string): Promise<{ graph: ServedGraph; factory?: GraphFactory }> {
    // An export may be a promise of a graph (a graph compiled after some set-up), as LangGraph's loader allows.
    const value = await this.importExport(this.specs[graphId]!);
    if (typeof value === "function" && !isGraph(value) && !isBuilder(value)) {
      const factory = value as GraphFactory;
      return { graph: await this.build(graphId, factory, { configurable: {} }), factory };
    }
    return { graph: this.checked(graphId, value) };
  }

  private async build(graphId: string, factory: GraphFactory, config: object): Promise<ServedGraph> {
    return this.checked(graphId, await factory(config));
  }

  private checked(graphId: string, value: unknown): ServedGraph {
    if (isBuilder(value)) value = value.compile();
    if (!isGraph(value))
      throw new InputError(
        `${this.specs[graphId]} (graph "${graphId}" of ${this.file}) is not a graph: export a compiled graph, a StateGraph, or a function returning one.`,
      );
    return value;
  }

  /**
   * A graph's JSON schemas (or, given one of its subgraphs and that subgraph's namespace, the subgraph's), found as
   * LangGraph's own servers find them: from the state definition at run time (zod, `StateSchema`), and for a graph
   * declared with `Annotation` (TypeScript types only), by parsing the graph's TypeScript source. The parse runs once
   * per graph, in a worker thread, for at most 30 s.
   */
  async schemas(graphId: string, part?: { graph: ServedGraph; namespace: string }): Promise<GraphSchemas> {
    const graph = part?.graph ?? (await this.get(graphId));
    const runtime = await getRuntimeGraphSchema(graph);
    if (runtime) return schemasFrom(runtime);
    const parsed = await this.parse(graphId);
    const root = Object.keys(parsed).find((key) => !key.includes("|"));
    const found = (part && root && parsed[`${root}|${part.namespace}`]) || (root ? parsed[root] : undefined);
    return schemasFrom(found);
  }

  private parse(graphId: string): Promise<Record<string, GraphSchema>> {
    let entry = this.parsed.get(graphId);
    if (!entry) {
      const { file, name } = sourceOf(this.dir, this.specs[graphId]!);
      entry = getStaticGraphSchema({ sourceFile: file, exportSymbol: name }, { timeoutMs: 30_000 }).catch(
        (error: unknown) => {
          this.parsed.delete(graphId);
          throw new WiringError(
            `The schemas of graph "${graphId}" (${this.specs[graphId]}) could not be read from its TypeScript source: ${(error as Error).message}. Declare its state with zod or StateSchema to give them at run time.`,
          );
        },
      );
      this.parsed.set(graphId, entry);
    }
    return entry;
  }
}

/** The schemas as the API answers them: a part the graph does not declare is null. */
function schemasFrom(schema: GraphSchema | undefined): GraphSchemas {
  return {
    input: schema?.input ?? null,
    output: schema?.output ?? null,
    state: schema?.state ?? null,
    config: schema?.config ?? null,
  };
}

export interface ProjectParts {
  /** Generative UI: each agent's components file (`ui` in langgraph.json). */
  ui: Record<string, string>;
  /** Packages the UI bundles leave to the page (`ui_config.shared`). */
  uiShared: string[];
  /** The project's own HTTP app, `./file.ts:export` of a Hono app (`http.app`). */
  httpApp?: string;
  /** The `http` settings of LangGraph's servers that keel serve does not apply (it says so when it starts). */
  httpUnapplied: string[];
}

function projectParts(where: string, parsed: unknown): ProjectParts {
  const { ui, ui_config: uiConfig, http } = parsed as { ui?: unknown; ui_config?: unknown; http?: unknown };
  if (
    ui !== undefined &&
    (typeof ui !== "object" ||
      ui === null ||
      Array.isArray(ui) ||
      Object.values(ui).some((v) => typeof v !== "string"))
  )
    throw new InputError(`${where}: "ui" is ${JSON.stringify(ui)}; give {"agent": "./path/to/ui.tsx"}.`);
  const shared = (uiConfig as { shared?: unknown } | undefined)?.shared;
  if (shared !== undefined && (!Array.isArray(shared) || shared.some((v) => typeof v !== "string")))
    throw new InputError(
      `${where}: "ui_config.shared" is ${JSON.stringify(shared)}; give a list of package names.`,
    );
  const app = (http as { app?: unknown } | undefined)?.app;
  if (app !== undefined && (typeof app !== "string" || !SPEC.test(app)))
    throw new InputError(
      `${where}: "http.app" is ${JSON.stringify(app)}; give "./path/to/file.ts:export" of a Hono app.`,
    );
  return {
    ui: (ui ?? {}) as Record<string, string>,
    uiShared: (shared ?? []) as string[],
    httpApp: app,
    httpUnapplied: Object.keys(http ?? {}).filter((key) => key !== "app"),
  };
}

function isGraph(value: unknown): value is ServedGraph {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as ServedGraph).invoke === "function" &&
    typeof (value as ServedGraph).getGraphAsync === "function"
  );
}

function isBuilder(value: unknown): value is { compile(): unknown } {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as { compile?: unknown }).compile === "function" &&
    !isGraph(value)
  );
}
