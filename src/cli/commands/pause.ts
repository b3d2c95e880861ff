/** `experiments pause SESSION` and `experiments unpause SESSION`: one update each, through the client. */
import type { ParsedArgs } from '../args';
import { say, withConnection } from '../commands';
import { EXIT } from '../errors';

export async function pauseCommand(parsed: ParsedArgs): Promise<number> {
  const [id] = parsed.positionals;
  return withConnection(async (c) => {
    const { experiments } = await c.experiments.pause(id);
    say(`Session ${id} paused${experiments.length ? `: ${experiments.join(', ')} checkpoint and stop` : ''}; no experiment starts until \`experiments unpause ${id}\`.`);
    return EXIT.ok;
  });
}

export async function unpauseCommand(parsed: ParsedArgs): Promise<number> {
  const [id] = parsed.positionals;
  return withConnection(async (c) => {
    const { experiments } = await c.experiments.unpause(id);
    say(`Session ${id} unpaused${experiments.length ? `: ${experiments.join(', ')} resume from their checkpoints` : ''}.`);
    return EXIT.ok;
  });
}
