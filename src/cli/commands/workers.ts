/**
 * `experiments workers`: the live workers of a task queue, from the worker registry (published
 * through Temporal, src/shared/registry.ts), with their hardware profiles and free slots.
 */
import { describeProfile } from '../../hardware/detect';
import { readRegistry } from '../../hardware/registry-client';
import { configFromEnv } from '../../config';
import type { WorkerEntry } from '../../shared/hardware';
import { stringOption, type ParsedArgs } from '../args';
import { EXIT } from '../errors';
import { table } from '../output';
import { say, withConnection } from '../commands';

export async function workersCommand(parsed: ParsedArgs): Promise<number> {
  const taskQueue = stringOption(parsed, 'task-queue') ?? configFromEnv().taskQueue;
  return withConnection(async (c) => {
    const { workers } = await readRegistry(c.client, taskQueue);
    if (parsed.options.json) {
      say(JSON.stringify(workers, null, 2));
      return EXIT.ok;
    }
    if (workers.length === 0) {
      say(`No live workers on task queue ${taskQueue}. Start one with \`experiments worker\`.`);
      return EXIT.ok;
    }
    say(workersTable(workers));
    return EXIT.ok;
  });
}

/** One row per worker: identity, class, CPU, memory, GPUs, free/total slots, last seen. */
export function workersTable(workers: readonly WorkerEntry[]): string {
  const rows = workers.map((w) => {
    const p = w.profile;
    const gpus = p.gpus.length === 0 ? '-' : `${p.gpus.length}x ${p.gpus[0].model} (${p.gpus.map((g) => `${g.memoryGiB}G`).join(', ')})`;
    return [w.identity, p.className, `${p.cpu.cores}`, `${p.memoryGiB}G`, gpus, `${w.slots.free}/${w.slots.total}`, w.seenAt];
  });
  const lines = [table(['WORKER', 'CLASS', 'CPUS', 'MEMORY', 'GPUS', 'FREE SLOTS', 'SEEN'], rows, new Set([2, 3]))];
  for (const w of workers) lines.push(`  ${w.identity}: ${describeProfile(w.profile)}`);
  return lines.join('\n');
}
