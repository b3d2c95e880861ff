/**
 * Command-line parsing and help text. A small parser of our own instead of a framework: the
 * grammar is tiny (`--name value`, `--name=value`, booleans, `--`), and owning it lets every
 * mistake become one UsageError line that names the command and the fix.
 */
import { UsageError } from './errors';

export interface OptionSpec {
  readonly type: 'string' | 'boolean';
  readonly short?: string;
  readonly value?: string;
  readonly help: string;
}

export interface CommandSpec {
  readonly name: string;
  /** Positional arguments, in order; all required. */
  readonly positionals: readonly string[];
  readonly options: Readonly<Record<string, OptionSpec>>;
  readonly summary: string;
  readonly details?: string;
}

export interface ParsedArgs {
  readonly positionals: string[];
  readonly options: Record<string, string | boolean | undefined>;
  readonly help: boolean;
}

const ENV_HELP = `Environment:
  TEMPORAL_ADDRESS            host:port of the Temporal frontend (unset: \`run\` starts an embedded server)
  TEMPORAL_NAMESPACE          namespace (default "default")
  TEMPORAL_TASK_QUEUE         task queue of the workers (default "experiments")
  EXPERIMENTS_CHECKPOINT_DIR  checkpoint directory (default <project>/.data/checkpoints)
  EXPERIMENTS_CHECKPOINT_URL  s3://bucket/prefix: checkpoints in S3 (with AWS_ENDPOINT_URL, AWS_REGION,
                              AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, EXPERIMENTS_S3_FORCE_PATH_STYLE)
  EXPERIMENTS_CHECKPOINT_CACHE_DIR  local cache of the S3 store (default <project>/.data/checkpoint-cache)
  EXPERIMENTS_PROGRAMS        programs file of the command trainer (workers run these; the CLI checks specs against it)
  LOG_LEVEL                   pino level of worker logs (default info)
  EXPERIMENTS_CODEC_KEYS      encrypt payloads: id:base64key,... (first is current; see README)
  EXPERIMENTS_CODEC_KEY_FILE  or a file of id:base64key lines`;

export const COMMANDS: readonly CommandSpec[] = [
  {
    name: 'run',
    positionals: ['FILE'],
    summary: 'validate a pipeline file, run its session, show progress and a results table',
    options: {
      'approve-as': { type: 'string', value: 'NAME', help: 'pre-approve long-running experiments, recorded as approved by NAME' },
      detach: { type: 'boolean', help: 'start the session, print its id and UI link, and exit (needs TEMPORAL_ADDRESS)' },
      resume: { type: 'boolean', help: 'continue experiments from their newest checkpoints of an earlier run of this session id' },
    },
    details: `Exits 0 only if every experiment completed, 1 if any did not.
Without TEMPORAL_ADDRESS, starts a local Temporal server (ports 7233/8233 if free) and an
in-process worker for the duration of the run; Ctrl-C then cancels the session (experiments
checkpoint first). With TEMPORAL_ADDRESS, uses that server and its workers; Ctrl-C only stops
watching.`,
  },
  {
    name: 'submit',
    positionals: ['SESSION', 'FILE'],
    summary: 'add the experiments and sweeps of FILE to a running session',
    options: {},
  },
  {
    name: 'approve',
    positionals: ['SESSION'],
    summary: "approve a session's long-running experiments",
    options: {
      by: { type: 'string', value: 'NAME', help: 'who approves (required; recorded in the audit)' },
      note: { type: 'string', value: 'TEXT', help: 'a note for the audit record' },
      key: { type: 'string', value: 'FILE', help: 'sign the approval with this Ed25519 key (needed when the policy lists your public key)' },
    },
    details: `Exits 2 with the session's reason when the approval is refused: a name outside the
policy's approvers, or an unsigned or badly signed approval by an approver with a key.`,
  },
  {
    name: 'reject',
    positionals: ['SESSION'],
    summary: "reject a session's waiting long-running experiments (they end rejected)",
    options: {
      by: { type: 'string', value: 'NAME', help: 'who rejects (required; same rules as approve)' },
      reason: { type: 'string', value: 'TEXT', help: 'why (required; recorded on the experiments and in the audit)' },
      key: { type: 'string', value: 'FILE', help: 'sign the rejection with this Ed25519 key' },
    },
  },
  {
    name: 'keygen',
    positionals: [],
    summary: 'make an Ed25519 key pair for signed approvals',
    options: { out: { type: 'string', value: 'BASE', help: 'write BASE.key (private, mode 0600) and BASE.pub (required)' } },
  },
  {
    name: 'status',
    positionals: ['ID'],
    summary: 'show a session or an experiment (<session>:<experiment>)',
    options: { json: { type: 'boolean', help: 'print one JSON object' } },
  },
  {
    name: 'hints',
    positionals: ['ID'],
    summary: 'show how to resume an experiment, or every experiment of a session',
    options: { json: { type: 'boolean', help: 'print JSON (an array for a session)' } },
  },
  {
    name: 'cancel',
    positionals: ['ID'],
    summary: 'interrupt an experiment (it checkpoints) or a whole session',
    options: { reason: { type: 'string', value: 'TEXT', help: 'why; recorded on the interrupted experiments' } },
  },
  {
    name: 'resume',
    positionals: ['EXPERIMENT_ID'],
    summary: "start a new run of an experiment from its newest verified checkpoint",
    options: {
      session: { type: 'string', value: 'SESSION', help: 'add it to this running session (default: a new session <session>-resume-<n>)' },
      'approve-as': { type: 'string', value: 'NAME', help: 'pre-approve the new session (for long-running experiments)' },
    },
  },
  {
    name: 'worker',
    positionals: [],
    summary: 'run an experiment worker (until Ctrl-C or SIGTERM)',
    options: {
      'task-queue': { type: 'string', value: 'NAME', help: 'task queue (default $TEMPORAL_TASK_QUEUE or "experiments")' },
      'checkpoint-dir': { type: 'string', value: 'DIR', help: 'checkpoint directory (default $EXPERIMENTS_CHECKPOINT_DIR)' },
      'checkpoint-url': { type: 'string', value: 'URL', help: 's3://bucket/prefix or a directory (default $EXPERIMENTS_CHECKPOINT_URL); replaces --checkpoint-dir' },
      'checkpoint-cache-dir': { type: 'string', value: 'DIR', help: 'local cache of an S3 store (default $EXPERIMENTS_CHECKPOINT_CACHE_DIR)' },
      'max-concurrent-activities': { type: 'string', value: 'N', help: 'trainings run at once by this worker (default 4)' },
      programs: { type: 'string', value: 'FILE', help: 'programs the command trainer may run here, JSON or YAML (default $EXPERIMENTS_PROGRAMS; none: it runs nothing)' },
      class: { type: 'string', value: 'NAME', help: 'hardware class name (default derived, e.g. cpu-2c-8g or gpu-h100x8)' },
      hardware: { type: 'string', value: 'FILE', help: 'JSON hardware profile fields that replace detected ones (className, cpu, memoryGiB, gpus)' },
    },
  },
  {
    name: 'workers',
    positionals: [],
    summary: 'list live workers of the task queue with their hardware profiles and free slots',
    options: {
      'task-queue': { type: 'string', value: 'NAME', help: 'task queue (default $TEMPORAL_TASK_QUEUE or "experiments")' },
      json: { type: 'boolean', help: 'print a JSON array' },
    },
  },
  {
    name: 'server',
    positionals: [],
    summary: 'run a local Temporal dev server with a Web UI (until Ctrl-C or SIGTERM)',
    options: {
      port: { type: 'string', value: 'PORT', help: 'gRPC port (default 7233)' },
      'ui-port': { type: 'string', value: 'PORT', help: 'Web UI port (default: gRPC port + 1000)' },
      'db-file': { type: 'string', value: 'PATH', help: 'SQLite file that keeps workflows across restarts (default .data/temporal.db)' },
    },
  },
  {
    name: 'codec-server',
    positionals: [],
    summary: 'serve /encode and /decode so the Web UI and `temporal` CLI show encrypted payloads',
    options: {
      port: { type: 'string', value: 'PORT', help: 'port (default 8081)' },
      host: { type: 'string', value: 'HOST', help: 'address to listen on (default 127.0.0.1)' },
      origin: { type: 'string', value: 'URL[,URL]', help: 'Web UI origins allowed by CORS (default http://localhost:8233,http://127.0.0.1:8233)' },
      'auth-token': { type: 'string', value: 'TOKEN', help: 'require Authorization: Bearer TOKEN (default $EXPERIMENTS_CODEC_AUTH_TOKEN, else none)' },
    },
    details: `Uses the keys of EXPERIMENTS_CODEC_KEYS or EXPERIMENTS_CODEC_KEY_FILE, as the workers do.`,
  },
  {
    name: 'help',
    positionals: [],
    summary: 'show help (`experiments help <command>` for one command)',
    options: {},
  },
];

export function findCommand(name: string): CommandSpec | undefined {
  return COMMANDS.find((c) => c.name === name);
}

/** Parses argv (after the command name) against a command's spec. */
export function parseArgs(spec: CommandSpec, argv: readonly string[]): ParsedArgs {
  const positionals: string[] = [];
  const options: Record<string, string | boolean | undefined> = {};
  let help = false;
  const usageHint = `see \`experiments ${spec.name} --help\``;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (arg === '--help' || arg === '-h') {
      help = true;
      continue;
    }
    if (arg.startsWith('-') && arg !== '-') {
      const eq = arg.indexOf('=');
      const long = arg.startsWith('--');
      const rawName = long ? arg.slice(2, eq > 0 ? eq : undefined) : arg.slice(1);
      const name = long ? rawName : Object.entries(spec.options).find(([, o]) => o.short === rawName)?.[0];
      const option = name === undefined ? undefined : spec.options[name];
      if (!option || name === undefined) throw new UsageError(`unknown option ${long ? `--${rawName}` : arg} for \`experiments ${spec.name}\` (${usageHint})`);
      if (option.type === 'boolean') {
        if (eq > 0) throw new UsageError(`option --${name} of \`experiments ${spec.name}\` takes no value`);
        options[name] = true;
        continue;
      }
      let value: string | undefined;
      if (long && eq > 0) value = arg.slice(eq + 1);
      else if (i + 1 < argv.length && !(argv[i + 1].startsWith('--') && argv[i + 1].length > 2)) value = argv[++i];
      if (value === undefined) throw new UsageError(`option --${name} of \`experiments ${spec.name}\` needs a value: --${name} ${option.value ?? 'VALUE'}`);
      if (options[name] !== undefined) throw new UsageError(`option --${name} of \`experiments ${spec.name}\` was given twice`);
      options[name] = value;
      continue;
    }
    positionals.push(arg);
  }
  if (help) return { positionals, options, help };
  if (positionals.length < spec.positionals.length) {
    const missing = spec.positionals.slice(positionals.length).join(' ');
    throw new UsageError(`\`experiments ${spec.name}\` needs ${missing} (usage: ${usageLine(spec)})`);
  }
  if (positionals.length > spec.positionals.length) {
    throw new UsageError(`unexpected argument ${JSON.stringify(positionals[spec.positionals.length])} for \`experiments ${spec.name}\` (usage: ${usageLine(spec)})`);
  }
  return { positionals, options, help };
}

/** A positive integer option, or undefined when absent. */
export function intOption(parsed: ParsedArgs, name: string, min = 1, max = Number.MAX_SAFE_INTEGER): number | undefined {
  const raw = parsed.options[name];
  if (raw === undefined) return undefined;
  const value = typeof raw === 'string' && /^\d+$/.test(raw.trim()) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new UsageError(`--${name}: expected an integer from ${min} to ${max}, received ${JSON.stringify(raw)}`);
  }
  return value;
}

export function stringOption(parsed: ParsedArgs, name: string): string | undefined {
  const raw = parsed.options[name];
  if (raw === undefined) return undefined;
  if (typeof raw !== 'string' || raw.trim() === '') throw new UsageError(`--${name}: expected a non-empty value`);
  return raw;
}

export function usageLine(spec: CommandSpec): string {
  const opts = Object.entries(spec.options).map(([name, o]) => (o.type === 'boolean' ? `[--${name}]` : `[--${name} ${o.value ?? 'VALUE'}]`));
  return ['experiments', spec.name, ...spec.positionals, ...opts].join(' ');
}

export function commandHelp(spec: CommandSpec): string {
  const lines = [`Usage: ${usageLine(spec)}`, '', `${spec.summary[0].toUpperCase()}${spec.summary.slice(1)}.`];
  const opts = Object.entries(spec.options);
  if (opts.length > 0) {
    lines.push('', 'Options:');
    for (const [name, o] of opts) lines.push(`  ${`--${name}${o.type === 'string' ? ` ${o.value ?? 'VALUE'}` : ''}`.padEnd(34)}${o.help}`);
  }
  if (spec.details) lines.push('', spec.details);
  lines.push('', ENV_HELP);
  return lines.join('\n');
}

/** Commands with their own argument parsing (src/replay.ts), listed in the main help. */
export const REPLAY_COMMANDS: readonly (readonly [string, string])[] = [
  ['history', 'history export WORKFLOW_ID [--out FILE]: save a workflow history as JSON'],
  ['replay', 'replay FILE|DIR...: replay histories against the current workflow code'],
];

export function mainHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length)) + 2;
  return [
    'Usage: experiments <command> [options]',
    '',
    'Runs machine-learning experiments durably on Temporal: they survive worker crashes,',
    'restarts and cancellations, and resume from their newest verified checkpoint.',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}${c.summary}`),
    ...REPLAY_COMMANDS.map(([name, summary]) => `  ${name.padEnd(width)}${summary}`),
    '',
    'Quick start (starts a local server and worker, no setup):',
    '  npx experiments run examples/quickstart.json --approve-as you',
    '',
    'Exit codes: 0 success; 1 the job ran and something failed; 2 bad usage or input;',
    '3 the Temporal server cannot be reached; 130 interrupted (Ctrl-C).',
    '',
    ENV_HELP,
    '',
    'Run `experiments help <command>` or `experiments <command> --help` for details.',
  ].join('\n');
}
