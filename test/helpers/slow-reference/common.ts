// Oracle copy of the pre-speedup implementation (see README.md in this folder); do not edit.
// Shared checks for the weight-format quantizers (pure Float32Array code, no tensors).
// Every format validates its input the same way: shape must match, dimensions must tile into the
// format's blocks, and NaN / ±inf must be rejected loudly (an amax of NaN would poison every scale).

export type Shape2 = readonly [rows: number, cols: number];

/** Throws unless w is a finite [rows, cols] matrix whose cols divide by `colMultiple`. */
export function checkMatrix(fn: string, w: Float32Array, shape: Shape2, colMultiple = 1, rowMultiple = 1): void {
  const [rows, cols] = shape;
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 1 || cols < 1) {
    throw new RangeError(`${fn}: bad shape [${rows}, ${cols}]`);
  }
  if (w.length !== rows * cols) throw new RangeError(`${fn}: ${w.length} elements for shape [${rows}, ${cols}]`);
  if (cols % colMultiple !== 0) throw new RangeError(`${fn}: in dim ${cols} is not a multiple of ${colMultiple}`);
  if (rows % rowMultiple !== 0) throw new RangeError(`${fn}: out dim ${rows} is not a multiple of ${rowMultiple}`);
  for (let i = 0; i < w.length; i++) {
    const v = w[i]!;
    if (!Number.isFinite(v)) {
      throw new RangeError(`${fn}: ${v} at [${Math.floor(i / cols)}, ${i % cols}] (flat index ${i}); weights must be finite`);
    }
  }
}

/** max |w[i]| over i in [start, end) (inputs are already checked finite). */
export function absMax(w: Float32Array, start: number, end: number): number {
  let m = 0;
  for (let i = start; i < end; i++) {
    const a = Math.abs(w[i]!);
    if (a > m) m = a;
  }
  return m;
}

/**
 * scale = amax / bound in float32 (Model Optimizer's exported scales are fp32 tensors: torch divides in
 * float32 and rounds once, which Math.fround of the exact double quotient reproduces).
 * An all-zero group (amax 0) would give scale 0 and 0/0 codes; mopt exports scale 1 there instead (codes
 * are then all 0 and dequantize to 0 exactly), the same choice Model Optimizer makes for NVFP4 block scales.
 * A nonzero amax whose quotient underflows float32 is a RangeError rather than an infinite code.
 */
export function amaxScale(fn: string, amax: number, bound: number): number {
  if (amax === 0) return 1;
  const s = Math.fround(amax / bound);
  if (s === 0) throw new RangeError(`${fn}: amax ${amax} / ${bound} underflows float32`);
  return s;
}

/** round half to even (torch.round) of a finite double. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x); // rounds half up
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}
