/**
 * Errors of the checkpoint store, and the small helpers that turn system errors into messages
 * naming the path and the code (ENOSPC, EACCES, ...).
 */

export type DurableWriteOp = 'create directory' | 'open' | 'write' | 'read data' | 'fsync' | 'close' | 'rename' | 'fsync directory';

/** A failed durable write: which step failed, on which path, with the system error's `code`. */
export class DurableWriteError extends Error {
  readonly code: string | undefined;
  /** True when the new file had already replaced the target (only the directory fsync failed). */
  readonly renamed: boolean;

  constructor(
    readonly op: DurableWriteOp,
    readonly path: string,
    readonly causeMessage: string,
    options: { code: string | undefined; renamed: boolean; cause: unknown },
  ) {
    super(`${op} ${path}: ${causeMessage}`, { cause: options.cause });
    this.name = 'DurableWriteError';
    this.code = options.code;
    this.renamed = options.renamed;
  }
}

/** Why a blob could not be used; `detail` is phrased to follow "skipped: " in a warning. */
export class CheckpointReadError extends Error {
  constructor(
    readonly checkpointId: string,
    readonly file: string,
    readonly reason: 'missing' | 'outside' | 'size' | 'sha256' | 'invalid' | 'io',
    readonly detail: string,
    readonly code?: string,
  ) {
    super(`checkpoint ${checkpointId} at ${file}: ${detail}`);
    this.name = 'CheckpointReadError';
  }
}

/** The manifest exists but cannot be read or understood. */
export class ManifestError extends Error {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(message);
    this.name = 'ManifestError';
  }
}

/** A store-level write failure naming the key, the path and the step that failed. */
export function writeFailure(key: string, err: unknown): Error {
  if (err instanceof DurableWriteError) {
    return withCode(`checkpoint write failed for ${key} at ${err.path} (${err.op}): ${err.causeMessage}`, err, err.code);
  }
  return withCode(`checkpoint write failed for ${key}: ${errorMessage(err)}`, err);
}

export function withCode(message: string, cause: unknown, code = errorCode(cause)): Error & { code?: string } {
  const error: Error & { code?: string } = new Error(message, cause === undefined ? undefined : { cause });
  if (code !== undefined) error.code = code;
  return error;
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function errorCode(err: unknown): string | undefined {
  const code = isRecord(err) ? err.code : undefined;
  return typeof code === 'string' ? code : undefined;
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
