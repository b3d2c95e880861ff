/**
 * Entry point of the `experiments` command (bin/experiments.js loads its compiled lib/cli/main.js): picks the
 * command, runs it, and turns its outcome into the exit-code contract of errors.ts. Command
 * modules load lazily so `--help` and `--version` answer without loading the Temporal SDK.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { COMMANDS, commandHelp, findCommand, mainHelp, parseArgs, type ParsedArgs } from './args';
import { classify, EXIT, UsageError } from './errors';
import { safe } from './terminal';

type Handler = (parsed: ParsedArgs) => Promise<number>;

/**
 * Loads a command module on first use. `require` rather than `import()`: this package is
 * CommonJS (compiled to lib/; tests load the sources through tsx).
 */
// eslint-disable-next-line @typescript-eslint/no-require-imports
const lazy = <T>(id: string) => (): T => require(id) as T;
const runModule = lazy<typeof import('./run')>('./run');
const replayModule = lazy<typeof import('../replay')>('../replay');

const io = { stdout: (s: string) => process.stdout.write(`${s}\n`), stderr: (s: string) => process.stderr.write(`${s}\n`) };

/**
 * `history export` and `replay` are library functions too (src/replay.ts) that own their output
 * and exit code; they parse with the same specs and parser (args.ts) as every other command.
 */
const REPLAY_HANDLERS: Record<string, (rest: string[]) => Promise<number>> = {
  'history export': (rest) => replayModule().runHistoryExportCommand(rest, io),
  replay: (rest) => replayModule().runReplayCommand(rest, io),
};

/** `history export ...` is one command of two words. */
function commandName(argv: readonly string[]): [string | undefined, string[]] {
  const [name, ...rest] = argv;
  if (name !== 'history') return [name, rest];
  if (rest[0] === '--help' || rest[0] === '-h') return ['history export', rest];
  if (rest[0] !== 'export') throw new UsageError(`history: expected \`history export WORKFLOW_ID [--out FILE]\`, received ${JSON.stringify(rest.join(' '))}`);
  return ['history export', rest.slice(1)];
}
const commands = lazy<typeof import('./commands')>('./commands');
const approvalCommands = lazy<typeof import('./approval-commands')>('./approval-commands');

const HANDLERS: Record<string, () => Handler> = {
  run: () => runModule().runCommand,
  submit: () => commands().submitCommand,
  approve: () => approvalCommands().approveCommand,
  reject: () => approvalCommands().rejectCommand,
  keygen: () => approvalCommands().keygenCommand,
  status: () => commands().statusCommand,
  hints: () => commands().hintsCommand,
  cancel: () => commands().cancelCommand,
  resume: () => commands().resumeCommand,
  worker: () => commands().workerCommand,
  workers: () => lazy<typeof import('./commands/workers')>('./commands/workers')().workersCommand,
  server: () => commands().serverCommand,
  metrics: () => lazy<typeof import('./commands/metrics')>('./commands/metrics')().metricsCommand,
  report: () => lazy<typeof import('./commands/report')>('./commands/report')().reportCommand,
  pause: () => lazy<typeof import('./commands/pause')>('./commands/pause')().pauseCommand,
  unpause: () => lazy<typeof import('./commands/pause')>('./commands/pause')().unpauseCommand,
  best: () => lazy<typeof import('./commands/best')>('./commands/best')().bestCommand,
  'codec-server': () => lazy<typeof import('./commands/codec-server')>('./commands/codec-server')().codecServerCommand,
};

function version(): string {
  const pkg = JSON.parse(readFileSync(path.resolve(__dirname, '..', '..', 'package.json'), 'utf8')) as { name: string; version: string };
  return `${pkg.name} ${pkg.version}`;
}

/** Runs one command line and resolves with its exit code; never throws. */
export async function main(argv: readonly string[]): Promise<number> {
  try {
    const [name, rest] = commandName(argv);
    if (name === undefined) {
      process.stdout.write(`${mainHelp()}\n`);
      throw new UsageError('missing a command (see the list above)');
    }
    if (name === '--version' || name === '-v' || name === 'version') {
      process.stdout.write(`${version()}\n`);
      return EXIT.ok;
    }
    if (name === '--help' || name === '-h' || name === 'help') {
      const words = rest.filter((a) => !a.startsWith('-'));
      const topic = words[0] === 'history' ? 'history export' : words[0];
      if (topic === undefined) {
        process.stdout.write(`${mainHelp()}\n`);
        return EXIT.ok;
      }
      const spec = findCommand(topic);
      if (!spec || topic === 'help') throw new UsageError(`unknown command ${JSON.stringify(topic)} (commands: ${COMMANDS.map((c) => c.name).join(', ')})`);
      process.stdout.write(`${commandHelp(spec)}\n`);
      return EXIT.ok;
    }
    const replay = REPLAY_HANDLERS[name];
    if (replay) return await replay(rest);
    const spec = findCommand(name);
    const load = HANDLERS[name];
    if (!spec || !load) {
      const hint = name.startsWith('-') ? `unknown option ${name}` : `unknown command ${JSON.stringify(name)}`;
      throw new UsageError(`${hint} (commands: ${COMMANDS.map((c) => c.name).join(', ')}; see \`experiments --help\`)`);
    }
    const parsed = parseArgs(spec, rest);
    if (parsed.help) {
      process.stdout.write(`${commandHelp(spec)}\n`);
      return EXIT.ok;
    }
    // Connection flags become the variables they stand for, read by every connection the command makes.
    lazy<typeof import('../connection')>('../connection')().applyConnectionFlags(parsed.options);
    return await load()(parsed);
  } catch (err) {
    const c = classify(err, { address: process.env.TEMPORAL_ADDRESS });
    // A server's or a child's message may carry control sequences: one safe line.
    if (c.message) process.stderr.write(`experiments: ${safe(c.message)}\n`);
    if (c.unexpected && process.env.EXPERIMENTS_DEBUG && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
    return c.code;
  }
}

/** Runs `main` and exits the process with its code once stdout and stderr are flushed. */
export function cli(argv: readonly string[]): void {
  void main(argv).then((code) => {
    process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
  });
}
