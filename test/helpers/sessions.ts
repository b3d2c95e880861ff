/**
 * Large sessions in tests: tiny `mlp` specs, and the check that every one of them completed
 * exactly once with the model of its own params, read back through visibility (folded rows
 * included), not only counted; and the sizes of the payloads in a history.
 */
import assert from 'node:assert/strict';
import type { ExperimentsClient } from '../../src/client';
import { parseMlpParams, runMlpBare } from '../../src/activities/trainers/mlp';
import type { ExperimentStatus } from '../../src/shared/types';
import { waitFor } from './env';

export interface TinySpec {
  readonly id: string;
  readonly trainer: 'mlp';
  readonly params: { epochs: number; samples: number; batchSize: number; seed: number };
}

/** `count` one-epoch, one-batch `mlp` specs `<prefix>-0000`…, each with its own seed. */
export function tinyMlpSpecs(count: number, prefix: string): TinySpec[] {
  const width = String(count - 1).length;
  return Array.from({ length: count }, (_, i) => ({
    id: `${prefix}-${String(i).padStart(width, '0')}`,
    trainer: 'mlp',
    params: { epochs: 1, samples: 32, batchSize: 32, seed: i },
  }));
}

/**
 * Waits until visibility lists every spec's experiment as completed, then asserts each id ran in
 * exactly one workflow execution, in one attempt, and ended with the model its params give when
 * trained bare. Returns the statuses.
 */
export async function assertEachCompletedOnce(
  client: ExperimentsClient,
  sessionId: string,
  specs: readonly TinySpec[],
  options: { pageSize: number; timeoutMs: number },
): Promise<ExperimentStatus[]> {
  const seen = await waitFor(
    async () => {
      const list: ExperimentStatus[] = [];
      for await (const e of client.allExperiments(sessionId, { pageSize: options.pageSize })) list.push(e);
      return list.length === specs.length && list.every((e) => e.state === 'completed') ? list : undefined;
    },
    { timeoutMs: options.timeoutMs, intervalMs: 1_000, what: `${specs.length} completed experiments of ${sessionId} in visibility` },
  );
  const byId = new Map(specs.map((s) => [s.id, s]));
  const ids = seen.map((e) => e.id);
  assert.equal(new Set(ids).size, specs.length, 'each experiment ran in exactly one workflow execution');
  assert.deepEqual([...ids].sort(), [...byId.keys()].sort());
  for (const e of seen) {
    assert.equal(e.attempt, 1, `${e.id} ran once`);
    assert.equal(e.result?.modelSha256, runMlpBare(parseMlpParams(byId.get(e.id)!.params)).modelSha256, `${e.id} has the model of its own params`);
  }
  return seen;
}

/** Bytes of each payload (data plus metadata) found anywhere in a history event, in the order found. */
export function payloadSizes(value: unknown, out: number[] = []): number[] {
  if (value === null || typeof value !== 'object') return out;
  if (ArrayBuffer.isView(value)) return out;
  const p = value as { data?: unknown; metadata?: Record<string, Uint8Array> };
  if (p.data instanceof Uint8Array && p.metadata && typeof p.metadata === 'object') {
    out.push(p.data.length + Object.entries(p.metadata).reduce((a, [k, v]) => a + k.length + (v?.length ?? 0), 0));
    return out;
  }
  for (const v of Object.values(value)) payloadSizes(v, out);
  return out;
}
