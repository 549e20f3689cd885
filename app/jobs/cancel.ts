// Cancellation of a running job. The library has no cancellation of its own: a job stops where
// it next reads a byte, writes one or reports progress, by throwing JobCancelled from there;
// every library call aborts its sinks on any error, so nothing is left half written.

/** Thrown at the first boundary after cancel(); the worker answers it with 'cancelled'. */
export class JobCancelled extends Error {
  constructor() {
    super('the job was cancelled');
    this.name = 'JobCancelled';
  }
}

export class CancelToken {
  #cancelled = false;

  get cancelled(): boolean {
    return this.#cancelled;
  }

  cancel(): void {
    this.#cancelled = true;
  }

  /** Throws JobCancelled once cancel() has been called. */
  check(): void {
    if (this.#cancelled) throw new JobCancelled();
  }
}
