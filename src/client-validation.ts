/**
 * The checks a client runs on specs before anything starts, for client.ts: structure through the
 * shared zod schema, params through each registered trainer's own `parseParams`, sweep points,
 * cross-session resume sources, the search metric and hardware classes. Each throws
 * InvalidInputError naming every field at fault; none starts or changes anything.
 */
import type { Client } from '@temporalio/client';
import type { AnyTrainer } from './activities/trainer';
import { readRegistry } from './hardware/registry-client';
import { checkSweepPoints } from './pipeline';
import { crossSessionResumeProblem, type ResolvedPolicy } from './shared/policy';
import { InvalidInputError, experimentListSchema, MAX_EXPERIMENTS, parseOrThrow } from './shared/schema';
import { sweepSize, type Sweep } from './shared/sweep';
import type { ExperimentSpec } from './shared/types';

type Trainers = ReadonlyMap<string, AnyTrainer>;

/** Specs (structure, ids unique against `existing` and each other, known trainer, its params). */
export function validateExperiments(trainers: Trainers, raw: readonly unknown[], existing: readonly string[], prefix: string): ExperimentSpec[] {
  const specs = parseOrThrow(experimentListSchema(existing), raw, prefix) as ExperimentSpec[];
  const problems: string[] = [];
  specs.forEach((spec, i) => {
    const trainer = trainers.get(spec.trainer);
    if (!trainer) {
      problems.push(`${prefix}[${i}].trainer: expected one of ${[...trainers.keys()].join(', ')}, received ${JSON.stringify(spec.trainer)}`);
      return;
    }
    try {
      const params: unknown = trainer.parseParams(spec.params ?? {});
      if (spec.estimatedDuration === 'auto' && trainer.totalSteps?.(params) === undefined) {
        problems.push(`${prefix}[${i}].estimatedDuration: "auto" needs a trainer that reports its total steps (Trainer.totalSteps); trainer ${JSON.stringify(spec.trainer)} does not, so give a duration such as '2h'`);
      }
    } catch (err) {
      problems.push(`${prefix}[${i}].${(err as Error).message}`);
    }
  });
  if (problems.length > 0) throw new InvalidInputError(problems);
  return specs;
}

/** Every point of `sweeps` as a spec, validated like an experiment, with ids unique against `explicit` and `held`. */
export function validateSweepPoints(
  validator: { validateExperiments(raw: readonly unknown[], existing?: readonly string[], prefix?: string): ExperimentSpec[] },
  sweeps: readonly Sweep[],
  explicit: readonly ExperimentSpec[],
  held: readonly string[],
): ExperimentSpec[] {
  const total = explicit.length + sweeps.reduce((n, s) => n + sweepSize(s), 0);
  if (total > MAX_EXPERIMENTS) throw new InvalidInputError([`sweeps: expected at most ${MAX_EXPERIMENTS} experiments with every sweep point counted, received ${total}`]);
  const problems: string[] = [];
  const owner = new Map<string, string>([...held.map((id): [string, string] => [id, 'an experiment of the session']), ...explicit.map((e, i): [string, string] => [e.id, `experiments[${i}]`])]);
  const specs = checkSweepPoints(sweeps, validator, owner, problems);
  if (problems.length > 0) throw new InvalidInputError(problems);
  return specs;
}

/** Throws when a spec's resumeFrom reaches a session the policy does not allow. */
export function checkResumeSources(specs: readonly ExperimentSpec[], sessionId: string, policy: ResolvedPolicy, prefix: string): void {
  const problems = specs.flatMap((spec, i) => {
    const problem = crossSessionResumeProblem(spec, sessionId, policy.allowCrossSessionResume);
    return problem ? [`${prefix}[${i}].${problem}`] : [];
  });
  if (problems.length > 0) throw new InvalidInputError(problems);
}

/** Throws when the search metric is one no trainer of `specs` reports, and every one declares its metrics. */
export function checkSearchMetric(trainers: Trainers, policy: ResolvedPolicy, specs: readonly ExperimentSpec[]): void {
  const metric = policy.search?.metric;
  if (metric === undefined || specs.length === 0) return;
  const declared = [...new Set(specs.map((s) => s.trainer))].map((name) => [name, trainers.get(name)?.metrics] as const);
  if (declared.some(([, metrics]) => metrics === undefined || metrics.includes(metric))) return;
  const known = declared.map(([name, metrics]) => `${name}: ${metrics?.join(', ') || 'none'}`).join('; ');
  throw new InvalidInputError([`policy.search.metric: expected a metric the trainers report at each epoch (${known}), received ${JSON.stringify(metric)}`]);
}

/** Throws for a `hardwareClass` no worker of the task queue ever registered (a typo would wait `awaiting-resources`). */
export async function checkHardwareClasses(client: Client, taskQueue: string, specs: readonly ExperimentSpec[], prefix: string): Promise<void> {
  if (!specs.some((s) => s.hardwareClass !== undefined)) return;
  const { classes } = await readRegistry(client, taskQueue);
  const known = classes.length > 0 ? classes.join(', ') : 'none yet: start a worker';
  const problems = specs.flatMap((spec, i) =>
    spec.hardwareClass === undefined || classes.includes(spec.hardwareClass)
      ? []
      : [`${prefix}[${i}].hardwareClass: expected a class registered on task queue ${taskQueue} (${known}), received ${JSON.stringify(spec.hardwareClass)}`],
  );
  if (problems.length > 0) throw new InvalidInputError(problems);
}
