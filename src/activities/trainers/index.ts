/** The trainers every worker has unless told otherwise. */
import type { AnyTrainer } from '../trainer';
import { createCommandTrainer, type ProgramRegistry } from './command';
import { mlpTrainer } from './mlp';

/**
 * `mlp`, and `command` over `programs`: the programs this worker runs (an empty registry runs
 * nothing). `undefined` is for clients that do not know the workers' programs: `command` specs
 * are then checked for shape only.
 */
export function builtInTrainers(programs: ProgramRegistry | undefined): AnyTrainer[] {
  return [mlpTrainer, createCommandTrainer(programs)];
}
