/**
 * Schemas of the `search` policy (zod), used by src/shared/schema.ts for both the user's policy
 * and the resolved one, and its resolution (defaults applied).
 */
import { z } from 'zod';
import type { ResolvedSearch, SearchPolicy } from './types';

const epochs = z.number().int().min(1).max(100_000);

const ashaSchema = z.strictObject({
  type: z.literal('asha'),
  reductionFactor: z.number().gt(1, 'expected a reduction factor (η) greater than 1').max(1000).optional(),
  gracePeriod: epochs.optional(),
  maxEpochs: epochs,
});

const medianSchema = z.strictObject({
  type: z.literal('median'),
  gracePeriod: epochs.optional(),
  minTrials: z.number().int().min(1).max(10_000).optional(),
});

const SCHEDULER_TYPES = ['asha', 'median'] as const;

/** A scheduler, with an error for an unknown `type` that names the known ones. */
const schedulerSchema = z
  .looseObject({ type: z.unknown() })
  .superRefine((value, ctx) => {
    if (!SCHEDULER_TYPES.includes(value.type as (typeof SCHEDULER_TYPES)[number])) {
      ctx.addIssue({ code: 'custom', path: ['type'], message: `expected one of ${SCHEDULER_TYPES.map((t) => JSON.stringify(t)).join(', ')}, received ${JSON.stringify(value.type) ?? 'nothing'}` });
    }
  })
  .pipe(z.discriminatedUnion('type', [ashaSchema, medianSchema]));

export const searchPolicySchema = z
  .strictObject({
    metric: z.string().trim().min(1).max(200),
    mode: z.enum(['min', 'max']).optional(),
    scheduler: schedulerSchema.optional(),
  })
  .superRefine((search, ctx) => {
    const s = search.scheduler;
    if (s?.type === 'asha' && (s.gracePeriod ?? 1) >= s.maxEpochs) {
      ctx.addIssue({ code: 'custom', path: ['scheduler', 'gracePeriod'], message: `expected fewer epochs than scheduler.maxEpochs (${s.maxEpochs}), received ${s.gracePeriod ?? 1}` });
    }
  });

export const resolvedSearchSchema = z.strictObject({
  metric: z.string().min(1).max(200),
  mode: z.enum(['min', 'max']),
  scheduler: z
    .discriminatedUnion('type', [
      z.strictObject({ type: z.literal('asha'), reductionFactor: z.number().gt(1), gracePeriod: epochs, maxEpochs: epochs }),
      z.strictObject({ type: z.literal('median'), gracePeriod: epochs, minTrials: z.number().int().min(1) }),
    ])
    .nullable(),
});

export const SEARCH_DEFAULTS = { mode: 'min', reductionFactor: 3, gracePeriod: 1, minTrials: 3 } as const;

/** Applies the defaults of SearchPolicy. */
export function resolveSearch(search: SearchPolicy): ResolvedSearch {
  const s = search.scheduler;
  return {
    metric: search.metric,
    mode: search.mode ?? SEARCH_DEFAULTS.mode,
    scheduler: !s
      ? null
      : s.type === 'asha'
        ? { type: 'asha', reductionFactor: s.reductionFactor ?? SEARCH_DEFAULTS.reductionFactor, gracePeriod: s.gracePeriod ?? SEARCH_DEFAULTS.gracePeriod, maxEpochs: s.maxEpochs }
        : { type: 'median', gracePeriod: s.gracePeriod ?? SEARCH_DEFAULTS.gracePeriod, minTrials: s.minTrials ?? SEARCH_DEFAULTS.minTrials },
  };
}

const finite = z.number().finite();
const bounds = (check: (lo: number, hi: number) => string | undefined, item: z.ZodNumber = finite) =>
  z.tuple([item, item]).superRefine(([lo, hi], ctx) => {
    const problem = check(lo, hi);
    if (problem) ctx.addIssue({ code: 'custom', message: `${problem}, received [${lo}, ${hi}]` });
  });

/** One distribution of a random space (src/shared/search/random.ts). */
export const distributionSchema = z.union([
  z.strictObject({ uniform: bounds((lo, hi) => (lo < hi ? undefined : 'expected [low, high] with low < high')) }),
  z.strictObject({ loguniform: bounds((lo, hi) => (lo > 0 && lo < hi ? undefined : 'expected [low, high] with 0 < low < high')) }),
  z.strictObject({ randint: bounds((lo, hi) => (lo <= hi ? undefined : 'expected [low, high] with low <= high (both included)'), z.number().int()) }),
  z.strictObject({ choice: z.array(z.union([z.number(), z.string(), z.boolean()])).min(1).max(1000) }),
], { error: 'expected one of {uniform: [low, high]}, {loguniform: [low, high]}, {randint: [low, high]}, {choice: [values…]}' });

/** A sweep's `random` space: `samples` draws, seeded. */
export const randomSpaceSchema = z.strictObject({
  /** Trials to draw. */
  samples: z.number().int().min(1).max(10_000),
  /** Seed of the draws. @default a hash of the sweep's idPrefix */
  seed: z.number().int().optional(),
  space: z.record(z.string().regex(/^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$/), distributionSchema).refine((s) => Object.keys(s).length > 0, 'expected at least one parameter'),
});
