// The error a call throws or rejects with, for tests that check its class, code and whole message
// rather than only that something went wrong.

/** What `call` throws; fails the test when it returns instead. */
export function thrown(call: () => unknown): unknown {
  try {
    call();
  } catch (error) {
    return error;
  }
  throw new Error('expected the call to throw');
}

/** What `call` rejects with (or throws); fails the test when it resolves instead. */
export async function thrownAsync(call: () => Promise<unknown>): Promise<unknown> {
  try {
    await call();
  } catch (error) {
    return error;
  }
  throw new Error('expected the call to throw');
}
