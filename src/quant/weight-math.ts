// Host-side arithmetic on float32 weights [out, in] shared by apply() and the export's codes.

/** w [out, in] with every column j divided by c[j] (w itself when c is undefined). */
export function divideColumns(w: Float32Array, shape: readonly [number, number], c: Float32Array | undefined): Float32Array {
  if (c === undefined) return w;
  const [rows, cols] = shape;
  const out = new Float32Array(w.length);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[i * cols + j] = Math.fround(w[i * cols + j]! / c[j]!);
  return out;
}

/** Signal-to-quantization-noise ratio in dB; +inf when the quantization is exact. */
export function sqnr(ref: Float32Array, q: Float32Array): number {
  let s = 0;
  let n = 0;
  for (let i = 0; i < ref.length; i++) {
    s += ref[i]! * ref[i]!;
    n += (ref[i]! - q[i]!) ** 2;
  }
  return n === 0 ? Infinity : 10 * Math.log10(s / n);
}
