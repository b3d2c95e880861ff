/**
 * The CLI's exit-code contract and the mapping from errors to it. Everything a user can get
 * wrong ends as exit 2 with one line; an unreachable server as exit 3 naming the address; a job
 * that ran and did not fully succeed as exit 1. Only truly unexpected errors print a stack, and
 * only with EXPERIMENTS_DEBUG=1, so scripts can rely on "one line on stderr".
 */
import { ServiceError, WorkflowUpdateFailedError } from '@temporalio/client';
import { NamespaceNotFoundError, WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError } from '@temporalio/common';
import { NotFoundError } from '../client';
import { InvalidInputError } from '../shared/schema';

export const EXIT = {
  ok: 0,
  failed: 1,
  usage: 2,
  unreachable: 3,
  /** 128 + SIGINT, what shells expect after Ctrl-C. */
  interrupted: 130,
} as const;

/** Bad usage or input: exit 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** The Temporal server cannot be reached: exit 3. */
export class UnreachableError extends Error {
  override readonly name = 'UnreachableError';
}

/** Ends the command with a given exit code after its output is printed (no message). */
export class ExitCode extends Error {
  override readonly name = 'ExitCode';
  constructor(readonly code: number) {
    super(`exit ${code}`);
  }
}

/** gRPC UNAVAILABLE (14), anywhere in the cause chain. */
function isUnavailable(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (code === 14) return true;
    if (e instanceof Error && (e.name === 'TransportError' || /Failed to connect before the deadline/.test(e.message))) return true;
  }
  return false;
}

export interface Classified {
  readonly code: number;
  readonly message: string;
  readonly unexpected: boolean;
}

/** Maps any error to its exit code and a one-line message. */
export function classify(err: unknown, context: { address?: string } = {}): Classified {
  const line = (text: string) => text.replace(/\s*\n\s*/g, ' ').trim();
  if (err instanceof ExitCode) return { code: err.code, message: '', unexpected: false };
  if (err instanceof UsageError || err instanceof InvalidInputError || err instanceof NotFoundError) {
    return { code: EXIT.usage, message: line(err.message), unexpected: false };
  }
  if (err instanceof UnreachableError) return { code: EXIT.unreachable, message: line(err.message), unexpected: false };
  if (err instanceof WorkflowNotFoundError) {
    return { code: EXIT.usage, message: line(`no running workflow with id ${JSON.stringify(err.workflowId)}${err.message ? ` (${err.message})` : ''}`), unexpected: false };
  }
  if (err instanceof NamespaceNotFoundError) {
    return { code: EXIT.usage, message: line(`namespace ${JSON.stringify(err.namespace)} does not exist on the server${context.address ? ` at ${context.address}` : ''} (check TEMPORAL_NAMESPACE)`), unexpected: false };
  }
  if (err instanceof WorkflowExecutionAlreadyStartedError) {
    return { code: EXIT.usage, message: line(`workflow ${JSON.stringify(err.workflowId)} is already running; use another id`), unexpected: false };
  }
  if (err instanceof WorkflowUpdateFailedError) {
    // The session's update validator rejected the input (duplicate id, stopping session, ...).
    return { code: EXIT.usage, message: line(`rejected by the session: ${err.cause?.message ?? err.message}`), unexpected: false };
  }
  if (isUnavailable(err)) {
    const where = context.address ? ` at ${context.address}` : '';
    return { code: EXIT.unreachable, message: line(`lost the connection to the Temporal server${where}: ${(err as Error).message}`), unexpected: false };
  }
  if (err instanceof ServiceError) return { code: EXIT.failed, message: line(err.message), unexpected: true };
  return { code: EXIT.failed, message: line(err instanceof Error ? err.message : String(err)), unexpected: true };
}
