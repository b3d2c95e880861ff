/**
 * The one schema for experiment specs, session policies and pipeline files (zod). The client,
 * the CLI and the session workflow's update validator all validate through here, so a spec
 * that one accepts the others accept too. Error messages name the path inside the input
 * (`experiments[3].params.lr`), what was expected and what was received.
 */
import { z } from 'zod';
import { parseDuration } from './duration';
import { approverProblems } from './approval';
import { idProblem } from './ids';
import { randomSpaceSchema, resolvedSearchSchema, searchPolicySchema } from './search/schema';
import { CLASS_NAME, RESOURCE_LIMITS } from './hardware';
import { sweepSize, sweepStemIssues } from './sweep';

/** Serialised size cap of one experiment's params, in bytes of JSON. */
export const MAX_PARAMS_BYTES = 64 * 1024;
/** Most experiments one pipeline file or one update may define. */
export const MAX_EXPERIMENTS = 10_000;

// The workflow bundle preloads zod with this already set (src/workflows/preload.ts): its config is
// frozen there, so it is only written where it is not set yet.
if (z.config().jitless !== true) z.config({ jitless: true });

const id = z.string().superRefine((value, ctx) => {
  const problem = idProblem('', value);
  if (problem) ctx.addIssue({ code: 'custom', message: problem.replace(/^: /, '') });
});

const duration = z.string().refine((v) => parseDuration(v) !== undefined, {
  message: "expected a duration such as '90s', '15m', '2h' or '1h30m'",
});

const count = (min: number) => z.number().int().min(min);

export const retryPolicySchema = z.strictObject({
  initialInterval: duration.optional(),
  backoffCoefficient: z.number().min(1).max(100).optional(),
  maximumInterval: duration.optional(),
  maximumAttempts: count(0).optional(),
});

/** Task priority: 1 (highest) to 5 (lowest), as Temporal's priority keys. */
const priority = z.number().int().min(1).max(5);
/** Temporal caps fairness keys at 64 bytes. */
const fairnessKey = z.string().min(1).refine((v) => new TextEncoder().encode(v).length <= 64, { message: 'expected at most 64 bytes' });

/** Approver lists: names unique, keys well-formed (src/shared/approval.ts). */
const approversSchema = z
  .array(z.strictObject({ name: z.string().trim().min(1).max(200), publicKey: z.string().optional() }))
  .max(100)
  .superRefine((list, ctx) => {
    for (const p of approverProblems(list)) ctx.addIssue({ code: 'custom', message: p.message, path: [p.index, p.field] });
  });

const retentionSchema = z.strictObject({
  latest: count(1).max(1000),
  best: count(0).max(1000).optional(),
  metric: z.string().min(1).max(200).optional(),
  mode: z.enum(['min', 'max']).optional(),
});

/**
 * `checkpointsToKeep`: a count, or `{ latest, best, metric, mode }` (src/shared/retention.ts). The
 * form is picked by the value's type, so a bad field is reported at its own path.
 */
function checkpointsToKeepSchema<T>(object: z.ZodType<T>): z.ZodType<number | T> {
  const number = count(1).max(1000);
  return z.unknown().superRefine((value, ctx) => {
    const isObject = typeof value === 'object' && value !== null && !Array.isArray(value);
    if (!isObject && typeof value !== 'number') {
      ctx.addIssue({ code: 'custom', message: `expected an integer from 1 to 1000, or { latest, best?, metric?, mode?: "min" | "max" }, received ${JSON.stringify(value)?.slice(0, 80)}` });
      return;
    }
    const parsed = (isObject ? object : number).safeParse(value, { reportInput: true });
    for (const issue of parsed.success ? [] : parsed.error.issues) ctx.addIssue({ ...issue } as never);
  }) as z.ZodType<number | T>;
}

export const sessionPolicySchema = z.strictObject({
  defaultTimeout: duration.optional(),
  longRunningThreshold: duration.optional(),
  heartbeatTimeout: duration.optional(),
  approvalTimeout: duration.optional(),
  maxConcurrent: count(1).max(1000).optional(),
  checkpointsToKeep: checkpointsToKeepSchema(retentionSchema).optional(),
  maxPreemptions: count(0).optional(),
  onFailure: z.enum(['continue', 'stop']).optional(),
  retry: retryPolicySchema.optional(),
  approvers: approversSchema.optional(),
  allowCrossSessionResume: z.union([z.boolean(), z.array(id).max(1000)]).optional(),
  priority: priority.optional(),
  fairnessKey: fairnessKey.optional(),
  search: searchPolicySchema.optional(),
  resourceTimeout: duration.optional(),
  profile: z
    .strictObject({ steps: count(2).max(1_000_000).optional(), duration: duration.optional() })
    .refine((p) => p.steps !== undefined || p.duration !== undefined, { message: 'expected steps or duration' })
    .optional(),
});

const params = z.record(z.string(), z.unknown()).superRefine((value, ctx) => {
  const bytes = new TextEncoder().encode(JSON.stringify(value)).length;
  if (bytes > MAX_PARAMS_BYTES) {
    ctx.addIssue({ code: 'custom', message: `expected at most ${MAX_PARAMS_BYTES} bytes of JSON, received ${bytes}` });
  }
});

export const resumeFromSchema = z.strictObject({
  experiment: z.string().superRefine((value, ctx) => {
    const [session, experiment, ...rest] = value.split('/');
    const problem = rest.length > 0 || experiment === undefined ? 'expected "<sessionId>/<experimentId>"' : idProblem('', session) ?? idProblem('', experiment);
    if (problem) ctx.addIssue({ code: 'custom', message: `${problem.replace(/^: /, '')}, received ${JSON.stringify(value)}` });
  }),
  checkpointId: id.optional(),
});

/** A spec's resource request (ResourceRequest): positive, whole where devices are counted, below RESOURCE_LIMITS. */
export const resourcesSchema = z
  .strictObject({
    gpus: count(0).max(RESOURCE_LIMITS.gpus).optional(),
    gpuMemoryGiB: z.number().positive().max(RESOURCE_LIMITS.gpuMemoryGiB).optional(),
    cpus: count(1).max(RESOURCE_LIMITS.cpus).optional(),
    memoryGiB: z.number().positive().max(RESOURCE_LIMITS.memoryGiB).optional(),
  })
  .refine((r) => !(r.gpus === 0 && r.gpuMemoryGiB !== undefined), { message: 'gpuMemoryGiB needs gpus of at least 1, received gpus: 0' });

export const hardwareClassSchema = z.string().regex(CLASS_NAME, 'expected a class name: lowercase letters, digits, ".", "_", "-" (at most 64), such as "gpu-h100x8"');

export const experimentSpecSchema = z.strictObject({
  id,
  trainer: z.string().min(1).max(128),
  params: params.optional(),
  estimatedDuration: z.string().refine((v) => v === 'auto' || parseDuration(v) !== undefined, { message: `expected a duration such as '90s', '15m' or '2h', or "auto"` }).optional(),
  longRunning: z.boolean().optional(),
  resumeFrom: resumeFromSchema.optional(),
  resources: resourcesSchema.optional(),
  hardwareClass: hardwareClassSchema.optional(),
});

/** Specs, checked as a list: ids must be unique (also against `existing`). */
export function experimentListSchema(existing: readonly string[] = []) {
  return z
    .array(experimentSpecSchema)
    .max(MAX_EXPERIMENTS)
    .superRefine((specs, ctx) => {
      const seen = new Set(existing);
      specs.forEach((spec, i) => {
        if (seen.has(spec.id)) {
          ctx.addIssue({ code: 'custom', path: [i, 'id'], message: `expected a unique id, received duplicate ${JSON.stringify(spec.id)}` });
        }
        seen.add(spec.id);
      });
    });
}

/**
 * A sweep: `base` params plus a `grid` (every combination becomes an experiment
 * `<prefix>-<k><v>-…`) or a `random` space (`samples` seeded draws, `<prefix>-<n>-<k><v>-…`).
 */
export const sweepSchema = z
  .strictObject({
    idPrefix: id,
    trainer: z.string().min(1).max(128),
    params: params.optional(),
    // A dotted key reaches into nested params: `params.lr` for a command program's own params.
    grid: z.record(z.string().regex(/^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$/), z.array(z.union([z.number(), z.string(), z.boolean()])).min(1).max(100)).optional(),
    random: randomSpaceSchema.optional(),
    estimatedDuration: duration.optional(),
    longRunning: z.boolean().optional(),
  })
  .superRefine((sweep, ctx) => {
    if ((sweep.grid === undefined) === (sweep.random === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['grid'], message: `expected exactly one of "grid" or "random", received ${sweep.grid ? 'both' : 'neither'}` });
    }
  });

export const pipelineSchema = z.strictObject({
  session: id,
  policy: sessionPolicySchema.optional(),
  experiments: z.array(z.unknown()).optional(),
  sweeps: z.array(sweepSchema).optional(),
  preApproved: z.strictObject({ by: z.string().min(1).max(200), note: z.string().max(2000).optional() }).optional(),
});

const estimates = z.array(z.strictObject({ experimentId: z.string().max(200), estimatedDurationMs: z.number().nonnegative().nullable() })).max(MAX_EXPERIMENTS);
const signature = z.string().regex(/^[0-9a-fA-F]{128}$/, 'expected 128 hex characters');

export const approveInputSchema = z.strictObject({
  by: z.string().trim().min(1).max(200),
  note: z.string().max(2000).optional(),
  at: z.string().max(40).optional(),
  estimates: estimates.optional(),
  signature: signature.optional(),
});

export const rejectInputSchema = z.strictObject({
  by: z.string().trim().min(1).max(200),
  reason: z.string().trim().min(1).max(2000),
  at: z.string().max(40).optional(),
  estimates: estimates.optional(),
  signature: signature.optional(),
});

const ms = z.number().int().min(0);

/**
 * A policy resolved to milliseconds (ResolvedPolicy): what a session and its experiments receive
 * as input. Workflows check their own input with it, since a start from the Temporal CLI or
 * another SDK skips the client. `maxPreemptions` is optional: inputs from before it existed.
 */
export const resolvedPolicySchema = z.strictObject({
  defaultTimeoutMs: ms.min(1),
  longRunningThresholdMs: ms,
  heartbeatTimeoutMs: ms.min(1),
  approvalTimeoutMs: ms.nullable(),
  maxConcurrent: count(1).max(1000),
  checkpointsToKeep: checkpointsToKeepSchema(retentionSchema.required()),
  maxPreemptions: count(0).optional(),
  onFailure: z.enum(['continue', 'stop']),
  retry: z.strictObject({
    initialIntervalMs: ms,
    backoffCoefficient: z.number().min(1).max(100),
    maximumIntervalMs: ms,
    maximumAttempts: count(0),
  }),
  allowCrossSessionResume: z.union([z.boolean(), z.array(id).max(1000)]).optional(),
  approvers: approversSchema.optional(),
  priority: priority.optional(),
  fairnessKey: fairnessKey.optional(),
  search: resolvedSearchSchema.optional(),
  resourceTimeoutMs: ms.min(1).optional(),
  profile: z.strictObject({ steps: count(2).optional(), durationMs: ms.min(1).optional() }).optional(),
});

/** What continue-as-new carries: checked for shape only, since the session itself wrote it. */
/** Sweeps passed by reference (SessionInput.sweeps, src/workflows/session/feed.ts). */
export const sweepListSchema = z.array(sweepSchema).max(100);

const carrySchema = z.looseObject({
  rows: z.array(z.looseObject({ spec: z.looseObject({ id: z.string(), trainer: z.string() }), state: z.string() })),
  audit: z.array(z.unknown()),
  runs: count(0),
  feed: z
    .strictObject({ sweeps: sweepListSchema, next: z.array(count(0)), waitingSince: z.number().optional(), rejected: z.string().max(3000).optional() })
    .refine((f) => f.next.length === f.sweeps.length, { message: 'expected one cursor in "next" per sweep', path: ['next'] })
    .optional(),
});

/** Input of the session workflow (SessionInput). */
export const sessionInputSchema = z.strictObject({
  sessionId: id,
  policy: resolvedPolicySchema,
  experiments: experimentListSchema(),
  preApproved: approveInputSchema.optional(),
  keepOpen: z.boolean().optional(),
  continueAsNewAfterEvents: count(1).optional(),
  redactSearchAttributes: z.boolean().optional(),
  /** Sweeps by reference: held as definitions and fed a window at a time (feed.ts). */
  sweeps: sweepListSchema.optional(),
  carry: carrySchema.optional(),
}).superRefine((input, ctx) => {
  const sweeps = input.sweeps ?? [];
  if (sweeps.length === 0) return;
  const total = input.experiments.length + sweeps.reduce((n, s) => n + sweepSize(s), 0);
  if (total > MAX_EXPERIMENTS) ctx.addIssue({ code: 'custom', path: ['sweeps'], message: `expected at most ${MAX_EXPERIMENTS} experiments with every sweep point counted, received ${total}` });
  for (const { index, message } of sweepStemIssues(input.experiments.map((e) => e.id), sweeps)) {
    ctx.addIssue({ code: 'custom', path: ['sweeps', index, 'idPrefix'], message });
  }
});

/** Input of the experiment workflow (ExperimentInput). */
export const experimentInputSchema = z.strictObject({
  sessionId: id,
  spec: experimentSpecSchema,
  policy: resolvedPolicySchema,
  timeoutMode: z.enum(['bounded', 'none']),
  parentWorkflowId: z.string().max(300).optional(),
  redactSearchAttributes: z.boolean().optional(),
});

/** The problems of `value` against `schema`, one line each naming the field; empty when it is valid. */
export function inputProblems(schema: z.ZodType, value: unknown, prefix = ''): string[] {
  const parsed = schema.safeParse(value, { reportInput: true });
  return parsed.success ? [] : formatIssues(parsed.error, prefix);
}

/** Formats zod issues as `path: message, received …` lines, with the path in the input's own notation. */
export function formatIssues(error: z.ZodError, prefix = ''): string[] {
  return error.issues.map((issue) => {
    const path = issue.path.reduce<string>(
      (acc, part) => (typeof part === 'number' ? `${acc}[${part}]` : acc ? `${acc}.${String(part)}` : String(part)),
      prefix,
    );
    return `${path || '(root)'}: ${describeIssue(issue)}`;
  });
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const received = 'input' in issue && issue.input !== undefined ? `, received ${JSON.stringify(issue.input)?.slice(0, 80)}` : '';
  switch (issue.code) {
    case 'unrecognized_keys':
      return `unexpected field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}`;
    case 'invalid_type':
      return `expected ${issue.expected}${received || ', received nothing'}`;
    case 'too_small':
    case 'too_big':
    case 'invalid_format':
    case 'invalid_value':
    case 'not_multiple_of':
      return `${issue.message}${received}`;
    default:
      return issue.message.includes('received') ? issue.message : `${issue.message}${received}`;
  }
}

/** Thrown for any invalid input; `problems` holds one line per issue, the message the first few. */
export class InvalidInputError extends Error {
  override readonly name = 'InvalidInputError';
  constructor(readonly problems: string[]) {
    super(problems.length > 3 ? `${problems.slice(0, 3).join('; ')} (and ${problems.length - 3} more)` : problems.join('; '));
  }
}

/** Parses `value` with `schema` or throws InvalidInputError with path-named problems. */
export function parseOrThrow<T>(schema: z.ZodType<T>, value: unknown, prefix = ''): T {
  const parsed = schema.safeParse(value, { reportInput: true });
  if (!parsed.success) throw new InvalidInputError(formatIssues(parsed.error, prefix));
  return parsed.data;
}
