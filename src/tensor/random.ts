// Counter-based random numbers: draw i of stream `seed` is a pure function of (seed, i), so the CPU and
// CUDA backends produce the same values and a tensor can be filled in parallel. The mixer is the
// 32-bit "lowbias32" finalizer applied twice; uniform draws use the top 24 bits (exact in float32).

function mix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

/** Uniform in [0, 1) with 24 random bits. */
export function uniformAt(seed: number, i: number): number {
  const h = mix32(mix32((i >>> 0) ^ Math.imul(seed >>> 0, 0x9e3779b9)) ^ Math.floor(i / 4294967296) ^ 0x5bd1e995);
  return (h >>> 8) / 16777216;
}

/** Standard normal via Box-Muller on draws 2i and 2i+1. */
export function normalAt(seed: number, i: number): number {
  const u1 = uniformAt(seed, 2 * i) + 1 / 33554432; // (0, 1): avoids log(0)
  const u2 = uniformAt(seed, 2 * i + 1);
  return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
}

/** A small seeded generator for host-side sampling (token sampling, data shuffling). */
export class Rng {
  private counter = 0;
  constructor(private readonly seed: number) {}
  next(): number {
    return uniformAt(this.seed, this.counter++);
  }
  normal(): number {
    return normalAt(this.seed ^ 0x2545f491, this.counter++);
  }
  /** integer in [0, n) */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
}
