// Memory scopes: tensors created inside `tidy(fn)` are disposed when fn returns, except the ones it
// returns and the ones marked with `keep`. Device memory is released deterministically this way instead
// of waiting for the garbage collector (which never sees GPU memory pressure).

export interface Disposable {
  dispose(): void;
  readonly isDisposed: boolean;
}

const stack: Set<Disposable>[] = [];

/** Called by every tensor constructor. */
export function track(t: Disposable): void {
  const top = stack[stack.length - 1];
  if (top !== undefined) top.add(t);
}

/** Removes t from every open scope so it outlives them (parameters, optimizer state, gradients). */
export function keep<T extends Disposable>(t: T): T {
  for (const s of stack) s.delete(t);
  return t;
}

function collect(value: unknown, out: Set<Disposable>, seen: Set<unknown>): void {
  if (value === null || typeof value !== 'object' || seen.has(value)) return;
  seen.add(value);
  if (isDisposable(value)) {
    out.add(value);
    return;
  }
  if (Array.isArray(value)) for (const v of value) collect(v, out, seen);
  else if (value instanceof Map) for (const v of value.values()) collect(v, out, seen);
  else if (Object.getPrototypeOf(value) === Object.prototype) for (const v of Object.values(value)) collect(v, out, seen);
}

function isDisposable(v: object): v is Disposable {
  return typeof (v as Partial<Disposable>).dispose === 'function' && 'isDisposed' in v;
}

/** Runs fn; disposes every tensor it created except those reachable from its result or kept. */
export function tidy<T>(fn: () => T): T {
  const scope = new Set<Disposable>();
  stack.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    stack.pop();
    for (const t of scope) t.dispose();
    throw e;
  }
  stack.pop();
  if (result instanceof Promise) throw new Error('tidy() takes a synchronous function; await outside it');
  const survivors = new Set<Disposable>();
  collect(result, survivors, new Set());
  for (const t of scope) if (!survivors.has(t)) t.dispose();
  // survivors now belong to the enclosing scope, if any
  const parent = stack[stack.length - 1];
  if (parent !== undefined) for (const t of survivors) if (scope.has(t)) parent.add(t);
  return result;
}

export function scopeDepth(): number {
  return stack.length;
}
