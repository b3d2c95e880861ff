/** The trainers every worker has unless told otherwise. */
import type { AnyTrainer } from '../trainer';
import { commandTrainer } from './command';
import { mlpTrainer } from './mlp';

export function builtInTrainers(): AnyTrainer[] {
  return [mlpTrainer, commandTrainer];
}
