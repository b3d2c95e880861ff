/**
 * Identifier rules shared by the client, the CLI and workflow code. Ids become workflow ids and
 * directory names in the checkpoint store, so they are restricted to a safe alphabet.
 */

const ID_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;

/** Returns an error message naming `field`, or undefined when `value` is a valid id. */
export function idProblem(field: string, value: unknown): string | undefined {
  if (typeof value !== 'string') return `${field}: expected a string id, received ${describe(value)}`;
  if (value.includes('..') || !ID_PATTERN.test(value)) {
    return `${field}: expected 1-128 characters of letters, digits, '.', '_' or '-' (no '..', '/', '\\' or control characters), received ${JSON.stringify(value)}`;
  }
  return undefined;
}

/** Workflow id of an experiment's child workflow. `:` never occurs in ids, so this is unambiguous. */
export function experimentWorkflowId(sessionId: string, experimentId: string): string {
  return `${sessionId}:${experimentId}`;
}

/** Splits an experiment workflow id back into its parts, or returns undefined for a session id. */
export function parseExperimentWorkflowId(workflowId: string): { sessionId: string; experimentId: string } | undefined {
  const at = workflowId.indexOf(':');
  if (at <= 0) return undefined;
  return { sessionId: workflowId.slice(0, at), experimentId: workflowId.slice(at + 1) };
}

/** Key of an experiment in the checkpoint store: `<sessionId>/<experimentId>`. */
export function storeKey(sessionId: string, experimentId: string): string {
  return `${sessionId}/${experimentId}`;
}

export function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (typeof value === 'string') return `${JSON.stringify(value.length > 60 ? value.slice(0, 60) + '…' : value)}`;
  if (typeof value === 'number' || typeof value === 'boolean') return `${typeof value} ${String(value)}`;
  if (Array.isArray(value)) return 'an array';
  return `a ${typeof value}`;
}
