/** A signal that aborts when any of its sources does, or when its time is up; `release` lets go of the sources. */
export interface BoundedSignal {
  signal: AbortSignal;
  /** Whether it aborted because its time was up (not because a source aborted). */
  timedOut(): boolean;
  /** Removes its listeners from the sources and stops its timer; call it when the work it bounds has ended. */
  release(): void;
}

/**
 * `AbortSignal.any([...sources, AbortSignal.timeout(ms)])`, but released when the work ends. `AbortSignal.any`
 * keeps its result reachable from every source until that source is collected, and `AbortSignal.timeout` keeps a
 * timer until it fires: for work under a long-lived signal (a run's, a worker's), each call would leave both behind
 * for the source's lifetime. Here the listeners are removed and the timer cleared on `release`.
 */
export function boundedSignal(
  sources: readonly (AbortSignal | undefined)[],
  timeoutMs?: number,
): BoundedSignal {
  const controller = new AbortController();
  const listening: [AbortSignal, () => void][] = [];
  let timer: NodeJS.Timeout | undefined;
  let timedOut = false;
  const release = () => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    for (const [source, listener] of listening.splice(0)) source.removeEventListener("abort", listener);
  };
  const abort = (reason: unknown) => {
    release();
    controller.abort(reason);
  };
  for (const source of sources) {
    if (!source) continue;
    if (source.aborted) {
      abort(source.reason);
      break;
    }
    const listener = () => abort(source.reason);
    source.addEventListener("abort", listener, { once: true });
    listening.push([source, listener]);
  }
  if (timeoutMs !== undefined && !controller.signal.aborted) {
    timer = setTimeout(() => {
      timedOut = true;
      abort(new DOMException("The operation was aborted due to timeout", "TimeoutError"));
    }, timeoutMs);
    timer.unref();
  }
  return { signal: controller.signal, timedOut: () => timedOut, release };
}
