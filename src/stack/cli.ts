/**
 * `scripts/stack.sh up|down|status|env`: see src/stack/stack.ts. Options come from the
 * environment: EXPERIMENTS_STACK_DIR, EXPERIMENTS_STACK_PORT_OFFSET, EXPERIMENTS_STACK_WORKERS.
 */
import { defaultStackOptions, stackClientEnv, stackDown, stackStatus, stackUp } from './stack';
import { stackPorts, STACK_HOST } from './topology';

const USAGE = 'usage: scripts/stack.sh up|down|status|env';

export async function stackCli(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (rest.length > 0 || !['up', 'down', 'status', 'env'].includes(command ?? '')) {
    process.stderr.write(`${USAGE} (received ${JSON.stringify(argv.join(' '))})\n`);
    return 2;
  }
  const opts = defaultStackOptions();
  for (const [name, value] of [['EXPERIMENTS_STACK_PORT_OFFSET', opts.portOffset], ['EXPERIMENTS_STACK_WORKERS', opts.workers]] as const) {
    if (!Number.isInteger(value) || value < 0 || value > 25_000) {
      process.stderr.write(`${name}: expected a non-negative integer, received ${JSON.stringify(process.env[name])}\n`);
      return 2;
    }
  }
  const log = (line: string) => process.stderr.write(`${line}\n`);
  try {
    if (command === 'up') {
      await stackUp(opts, log);
      const ports = stackPorts(opts);
      process.stdout.write(`stack up: TEMPORAL_ADDRESS=${STACK_HOST}:${ports.frontend}  UI http://${STACK_HOST}:${ports.ui}  (scripts/stack.sh env prints the client variables)\n`);
    } else if (command === 'down') {
      await stackDown(opts, log);
      process.stdout.write('stack down\n');
    } else if (command === 'status') {
      const s = await stackStatus(opts);
      const show = (pid: number | undefined) => (pid === undefined ? 'stopped' : `running (pid ${pid})`);
      process.stdout.write(
        [`postgresql ${show(s.postgresql)}`, `temporal ${show(s.temporal)}`, `temporal-ui ${show(s.ui)}`, `s3 ${show(s.s3)}`, ...s.workers.map((w, i) => `worker-${i + 1} ${show(w)}`)].join('\n') + '\n',
      );
      const all = [s.postgresql, s.temporal, s.ui, s.s3, ...s.workers];
      return all.every((x) => x !== undefined) ? 0 : 1;
    } else {
      for (const [k, v] of Object.entries(stackClientEnv(opts))) process.stdout.write(`export ${k}=${v}\n`);
    }
    return 0;
  } catch (err) {
    process.stderr.write(`stack ${command}: ${(err as Error).message}\n`);
    return 1;
  }
}
