import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { build as buildUi } from "@langchain/langgraph-ui";
import type { Context, Hono } from "hono";
import { getMimeType } from "hono/utils/mime";
import { InputError, NotFoundError } from "../core/errors.js";
import type { GraphRegistry } from "../runtime/registry.js";
import { errors, type Vars } from "./http.js";

/**
 * The parts of a LangGraph project beside its graphs that LangGraph's servers serve, served the same way: the
 * project's own HTTP routes (`http.app`, a Hono app mounted in front of the API, so its middleware sees every
 * request) and its generative UI components (`ui`, bundled with LangGraph's own UI bundler).
 */

/** The project's Hono app (`http.app` of langgraph.json), ready to mount; none if it has none. */
export async function loadHttpApp(graphs: GraphRegistry): Promise<Hono | undefined> {
  const spec = graphs.project.httpApp;
  if (!spec) return undefined;
  const app = await graphs.importExport(spec);
  if (!isHono(app))
    throw new InputError(
      `${spec} (http.app of ${graphs.file}) is not a Hono app: export \`new Hono()\` with the routes to serve.`,
    );
  // The app's HTTPExceptions answer as it made them (its status, its text); anything else it throws reaches
  // Keel's error handler and is answered as any failure of the server. An app with its own handler keeps it.
  // (`errorHandler` is Hono's own field: an app whose handler is a fresh app's has not set one.)
  const handlerOf = (hono: Hono) => (hono as unknown as { errorHandler: unknown }).errorHandler;
  if (handlerOf(app) === handlerOf(new (app.constructor as new () => Hono)()))
    app.onError((error) => {
      if (typeof (error as { getResponse?: unknown }).getResponse === "function")
        return (error as unknown as { getResponse(): Response }).getResponse();
      throw error;
    });
  return app;
}

function isHono(value: unknown): value is Hono {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as Hono).fetch === "function" &&
    typeof (value as Hono).route === "function" &&
    Array.isArray((value as Hono).routes)
  );
}

/** One agent's bundle: its entry script and any stylesheets. */
type UiFiles = { basename: string; contents: Uint8Array }[];

/**
 * The generative UI bundles of the project (`ui` of langgraph.json), built once, in memory. Building starts when
 * the server does and does not hold it up; a request for a bundle waits for it, and a build that failed is
 * answered with what failed.
 */
export class UiBundles {
  private readonly built: Promise<Map<string, UiFiles>>;

  constructor(private readonly graphs: GraphRegistry) {
    this.built = this.build();
    this.built.catch(() => undefined); // reported where it is asked for
  }

  get agents(): string[] {
    return Object.keys(this.graphs.project.ui);
  }

  async files(agent: string): Promise<UiFiles> {
    if (!Object.hasOwn(this.graphs.project.ui, agent))
      throw new NotFoundError(
        `There is no UI for "${agent}"; ${path.basename(this.graphs.file)} has ${this.agents.length ? `UI for ${this.agents.join(", ")}` : 'no "ui"'}.`,
      );
    return (await this.built).get(agent) ?? [];
  }

  private async build(): Promise<Map<string, UiFiles>> {
    const defs = this.graphs.project.ui;
    const result = new Map<string, UiFiles>();
    if (Object.keys(defs).length === 0) return result;
    const out = fs.mkdtempSync(path.join(os.tmpdir(), "keel-ui-"));
    try {
      await buildUi({
        output: out,
        cwd: this.graphs.dir,
        defs,
        config: { shared: this.graphs.project.uiShared },
      });
      for (const agent of Object.keys(defs)) {
        const folder = path.join(out, "public", agent);
        const names = fs.existsSync(folder) ? fs.readdirSync(folder) : [];
        result.set(
          agent,
          names.map((basename) => ({ basename, contents: fs.readFileSync(path.join(folder, basename)) })),
        );
      }
      return result;
    } catch (error) {
      throw new InputError(
        `The generative UI of ${this.graphs.file} could not be built: ${(error as Error).message.split("\n")[0]}. Fix the components file and restart.`,
      );
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  }
}

/** `POST /ui/{agent}` (the HTML that loads a component, as the SDK's UI client asks) and the bundles' files. */
export function uiRoutes(app: OpenAPIHono<Vars>, bundles: UiBundles): void {
  const Agent = z.object({
    agent: z
      .string()
      .min(1)
      .max(200)
      .openapi({ param: { name: "agent", in: "path" } }),
  });
  app.openapi(
    createRoute({
      method: "post",
      path: "/ui/{agent}",
      summary: "The HTML that loads one of an agent's generative UI components (its scripts and styles)",
      request: {
        params: Agent,
        body: {
          content: { "application/json": { schema: z.object({ name: z.string().min(1).max(200) }) } },
          required: true,
        },
      },
      responses: {
        200: { description: "HTML", content: { "text/html": { schema: z.string() } } },
        ...errors,
      },
    }),
    async (c) => {
      const { agent } = c.req.valid("param");
      const files = await bundles.files(agent);
      const base = `${originOf(c)}/ui/${encodeURIComponent(agent)}`;
      const global = `__LGUI_${agent.replace(/[^a-zA-Z0-9]/g, "_")}`;
      const name = JSON.stringify(c.req.valid("json").name).replaceAll("'", "&#39;");
      const html = [
        ...files
          .filter((f) => f.basename.endsWith(".css"))
          .map((f) => `<link rel="stylesheet" href="${base}/${f.basename}" />`),
        ...files
          .filter((f) => f.basename.endsWith(".js"))
          .map(
            (f) =>
              `<script src="${base}/${f.basename}" onload='${global}.render(${name}, "{{shadowRootId}}")'></script>`,
          ),
      ].join("\n");
      return c.html(html, 200);
    },
  );

  app.openAPIRegistry.registerPath({
    method: "get",
    path: "/ui/{agent}/{file}",
    summary: "A file of an agent's UI bundle (public: a page's script tags load it without a key)",
    request: { params: Agent.extend({ file: z.string().openapi({ param: { name: "file", in: "path" } }) }) },
    responses: { 200: { description: "The file" }, 404: errors[404] },
  });
  app.get("/ui/:agent/:file", async (c) => {
    const file = (await bundles.files(c.req.param("agent"))).find((f) => f.basename === c.req.param("file"));
    if (!file)
      throw new NotFoundError(
        `The UI of "${c.req.param("agent")}" has no file ${c.req.param("file")}; POST /ui/${c.req.param("agent")} names its files.`,
      );
    c.header("Content-Type", getMimeType(file.basename) ?? "application/octet-stream");
    return c.body(new Uint8Array(file.contents), 200);
  });
}

/**
 * Where the page that shows a component loads its files from: this server, as the client reached it. On loopback
 * that is plain http; elsewhere the page's own scheme (a server behind a TLS proxy does not know it).
 */
function originOf(c: Context): string {
  const host = c.req.header("host") ?? new URL(c.req.url).host;
  const hostname = host.replace(/:\d+$/, "");
  return ["localhost", "127.0.0.1", "[::1]"].includes(hostname) ? `http://${host}` : `//${host}`;
}
