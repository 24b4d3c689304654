// Errors a user can act on. The CLI prints their message alone (one line, no stack trace); anything else
// that escapes is a bug in mopt and is printed with its stack.

export class UserError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UserError';
  }
}

/** Throws a UserError when cond is false. */
export function check(cond: unknown, message: string | (() => string)): asserts cond {
  if (!cond) throw new UserError(typeof message === 'string' ? message : message());
}
