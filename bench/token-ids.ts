// Token ids shared by the benchmarks and their PyTorch baselines (bench/pytorch_baseline.py lehmer_ids):
// the Lehmer stream x <- 48271 x mod (2^31 - 1), id = x mod vocab, exact in doubles.

export function lehmerIds(n: number, vocab: number, seed: number): number[] {
  let x = seed % 2147483647 || 1;
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    x = (48271 * x) % 2147483647;
    out[i] = x % vocab;
  }
  return out;
}
