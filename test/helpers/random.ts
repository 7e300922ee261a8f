/** A seeded generator of numbers in [0, 1): a run that fails can be replayed with its seed. */
export function seeded(seed: number): () => number {
  let s = seed;
  return () => (s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
}
