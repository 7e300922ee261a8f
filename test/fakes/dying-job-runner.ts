/**
 * A graphile-worker process that takes one Keel run job and dies holding it (SIGKILL, no clean-up): what a
 * worker host that crashes mid-claim leaves behind. Usage: node --import tsx dying-job-runner.ts <database-url>
 * <task identifier>. It prints "taken" before it dies.
 */
import { Logger, run } from "graphile-worker";

const [connectionString, identifier] = process.argv.slice(2);
if (!connectionString || !identifier) {
  console.error("usage: dying-job-runner.ts <database-url> <task identifier>");
  process.exit(2);
}
await run({
  connectionString,
  concurrency: 1,
  pollInterval: 100,
  noHandleSignals: true,
  crontab: "",
  logger: new Logger(() => () => undefined),
  taskList: {
    [identifier]: () => {
      process.stdout.write("taken\n", () => process.kill(process.pid, "SIGKILL"));
      return new Promise<void>(() => undefined);
    },
  },
});
