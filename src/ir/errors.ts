/** An error the user caused (bad model, bad flag, bad file): the CLI prints its message as one line, no stack. */
export class UserError extends Error {
  override name = 'UserError';
}

/** A shape or attribute error raised while tracing an op; the message names the op and the model's file:line:col. */
export class OpError extends UserError {
  override name = 'OpError';
}
