/** The trainers every worker has unless told otherwise. */
import type { AnyTrainer } from '../trainer';
import { mlpTrainer } from './mlp';

export function builtInTrainers(): AnyTrainer[] {
  return [mlpTrainer];
}
