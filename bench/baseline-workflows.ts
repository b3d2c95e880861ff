/**
 * The bare-Temporal baseline for pipeline-throughput-ratio: one plain workflow that runs the
 * plugin's own `trainExperiment` activity over the same inputs, in `Promise.all` batches, with
 * the same activity options the experiment workflow uses in bounded mode. No child workflows,
 * no memo or search-attribute upserts, no checkpoint lookup, no session bookkeeping.
 *
 * Runs in the workflow sandbox: imports only @temporalio/workflow and sandbox-safe modules.
 */
import { executeChild, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../src/activities';
import type { TrainInput } from '../src/shared/definitions';
import type { ResolvedPolicy } from '../src/shared/policy';
import type { TrainingOutcome } from '../src/shared/types';
import { trainingActivityOptions } from '../src/workflows/experiment';

export interface BaselinePipelineInput {
  readonly policy: ResolvedPolicy;
  readonly inputs: readonly TrainInput[];
  /** Activities awaited together per batch (the session's maxConcurrent). */
  readonly batch: number;
}

export interface BaselinePipelineResult {
  readonly completed: number;
  readonly modelSha256: (string | null)[];
}

export async function baselinePipeline(input: BaselinePipelineInput): Promise<BaselinePipelineResult> {
  const { trainExperiment } = proxyActivities<Activities>(trainingActivityOptions(input.policy, 'bounded'));
  const modelSha256: (string | null)[] = [];
  let completed = 0;
  for (let i = 0; i < input.inputs.length; i += input.batch) {
    const outcomes = await Promise.all(input.inputs.slice(i, i + input.batch).map((x) => trainExperiment(x)));
    for (const o of outcomes) {
      if (o.status === 'completed') completed++;
      modelSha256.push(o.result?.modelSha256 ?? null);
    }
  }
  return { completed, modelSha256 };
}

/**
 * Diagnostic: the same activities with `batch` in flight as a sliding window (what the session
 * does with its children) instead of batches: the upper bound for a session that ran bounded
 * experiments as activities instead of child workflows.
 */
export async function baselineWindowPipeline(input: BaselinePipelineInput): Promise<BaselinePipelineResult> {
  const { trainExperiment } = proxyActivities<Activities>(trainingActivityOptions(input.policy, 'bounded'));
  const outcomes: TrainingOutcome[] = new Array(input.inputs.length);
  let next = 0;
  const lane = async () => {
    while (next < input.inputs.length) {
      const i = next++;
      outcomes[i] = await trainExperiment(input.inputs[i]);
    }
  };
  await Promise.all(Array.from({ length: input.batch }, lane));
  return {
    completed: outcomes.filter((o) => o.status === 'completed').length,
    modelSha256: outcomes.map((o) => o.result?.modelSha256 ?? null),
  };
}

/**
 * A diagnostic middle ground: each training runs in a minimal child workflow (start child → run
 * the activity → return), without the plugin's memo and search-attribute upserts, queries or
 * session bookkeeping, keeping `batch` children in flight like the session's maxConcurrent (a
 * sliding window, not batches). It separates what child workflows cost by themselves from what
 * the plugin adds on top.
 */
export async function baselineChildPipeline(input: BaselinePipelineInput): Promise<BaselinePipelineResult> {
  const outcomes: TrainingOutcome[] = new Array(input.inputs.length);
  const parent = workflowInfo().workflowId;
  let next = 0;
  const lane = async () => {
    while (next < input.inputs.length) {
      const i = next++;
      const x = input.inputs[i];
      outcomes[i] = await executeChild(baselineTrainingChild, { workflowId: `${parent}:${x.spec.id}`, args: [{ policy: input.policy, input: x }] });
    }
  };
  await Promise.all(Array.from({ length: input.batch }, lane));
  return {
    completed: outcomes.filter((o) => o.status === 'completed').length,
    modelSha256: outcomes.map((o) => o.result?.modelSha256 ?? null),
  };
}

export async function baselineTrainingChild(args: { policy: ResolvedPolicy; input: TrainInput }): Promise<TrainingOutcome> {
  const { trainExperiment } = proxyActivities<Activities>(trainingActivityOptions(args.policy, 'bounded'));
  return trainExperiment(args.input);
}
