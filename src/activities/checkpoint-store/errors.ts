/**
 * Errors of the checkpoint store, and the small helpers that turn system errors into messages
 * naming the path and the code (ENOSPC, EACCES, ...).
 */

import type { FenceToken } from './types';

export type DurableWriteOp = 'create directory' | 'open' | 'write' | 'read data' | 'fsync' | 'close' | 'rename' | 'link' | 'fsync directory';

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

/**
 * A write (or registration) from an attempt older than the newest one registered for the run.
 * Nothing was changed. `type` is the ApplicationFailure type the runtime reports it under.
 */
export class StaleAttemptError extends Error {
  readonly type = 'StaleAttempt';

  constructor(
    readonly key: string,
    readonly runId: string | undefined,
    readonly attempted: FenceToken,
    readonly newest: FenceToken,
    what: string,
  ) {
    super(
      `${what} for ${key}${runId ? ` (run ${runId})` : ''} refused: attempt ${formatFence(attempted)} is stale, attempt ${formatFence(newest)} has started since; the newer attempt's checkpoints are untouched`,
    );
    this.name = 'StaleAttemptError';
  }
}

/** `invocation 0 attempt 2`, as written in logs and errors. */
export function formatFence(token: FenceToken): string {
  return `invocation ${token.invocation} attempt ${token.attempt}`;
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
