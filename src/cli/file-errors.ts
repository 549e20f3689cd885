// File errors as the CLI shows them: with the name of the file they are about.

import { EdgeMoqError, FormatError } from '../errors.js';

/** A file error that doesn't say which file: the input's name in front. */
export function naming(error: unknown, path: string): unknown {
  if (error instanceof EdgeMoqError && error.code === 'MALFORMED_FILE' && !error.message.includes(path)) {
    return new FormatError(`${path}: ${error.message}`, { cause: error, ...(error.location ? { location: error.location } : {}) });
  }
  return error;
}
