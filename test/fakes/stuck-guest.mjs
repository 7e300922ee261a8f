// A sandbox guest stuck where no interpreter interrupt reaches it: it says it started, then never yields.
import { parentPort } from "node:worker_threads";

parentPort.postMessage({ type: "started" });
for (;;);
