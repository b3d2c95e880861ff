/**
 * Command-line parsing and help text for every command, `history export` and `replay` included:
 * the specs below are the one source of each command's flags, its usage line and its help.
 * Parsing is node:util's parseArgs (`--name value`, `--name=value`, `-x value`, booleans, `--`).
 * Add a command as a CommandSpec entry in COMMANDS plus a handler in src/cli/main.ts HANDLERS.
 */
import { parseArgs as nodeParseArgs } from 'node:util';
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
  /** The last positional takes one or more values (`replay FILE|DIR...`). @default false */
  readonly variadic?: boolean;
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
  TEMPORAL_ADDRESS            host:port of the Temporal frontend (unset, and none in the profile:
                              \`run\` starts an embedded server)
  TEMPORAL_NAMESPACE          namespace (default "default")
  TEMPORAL_PROFILE            connection profile of the config file (default "default")
  TEMPORAL_CONFIG_FILE        config file (default ~/.config/temporalio/temporal.toml, as the temporal CLI)
  TEMPORAL_API_KEY            API key, sent as "authorization: Bearer KEY" (turns TLS on)
  TEMPORAL_TLS, TEMPORAL_TLS_SERVER_CA_CERT_PATH, TEMPORAL_TLS_CLIENT_CERT_PATH,
  TEMPORAL_TLS_CLIENT_KEY_PATH, TEMPORAL_TLS_SERVER_NAME  TLS, as the temporal CLI reads them
  TEMPORAL_TASK_QUEUE         task queue of the workers (default "experiments")
  TEMPORAL_UI_URL             Web UI base URL for printed links (unset: no link, except the embedded server's own)
  EXPERIMENTS_CHECKPOINT_DIR  checkpoint directory (default <project>/.data/checkpoints)
  EXPERIMENTS_CHECKPOINT_URL  s3://bucket/prefix: checkpoints in S3 (with AWS_ENDPOINT_URL, AWS_REGION,
                              AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, EXPERIMENTS_S3_FORCE_PATH_STYLE)
  EXPERIMENTS_CHECKPOINT_CACHE_DIR  local cache of the S3 store (default <project>/.data/checkpoint-cache)
  EXPERIMENTS_PROGRAMS        programs file of the command trainer (workers run these; the CLI checks specs against it)
  LOG_LEVEL                   pino level of worker logs (default info)
  EXPERIMENTS_DEPLOYMENT_NAME, EXPERIMENTS_BUILD_ID  a versioned worker's deployment version (docs/versioning.md)
  EXPERIMENTS_CODEC_KEYS      encrypt payloads: id:base64key,... (first is current; see README)
  EXPERIMENTS_CODEC_KEY_FILE  or a file of id:base64key lines`;

/**
 * Where to connect, named as the `temporal` CLI names them; they override TEMPORAL_PROFILE,
 * TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE and TEMPORAL_API_KEY (src/connection.ts). Every
 * command that talks to a server takes them.
 */
export const CONNECTION_OPTIONS: Readonly<Record<string, OptionSpec>> = {
  profile: { type: 'string', value: 'NAME', help: 'connection profile of the config file (default $TEMPORAL_PROFILE or "default")' },
  address: { type: 'string', value: 'HOST:PORT', help: 'Temporal frontend (default $TEMPORAL_ADDRESS, else the profile\'s)' },
  namespace: { type: 'string', value: 'NAME', help: 'namespace (default $TEMPORAL_NAMESPACE, else the profile\'s, else "default")' },
  'api-key': { type: 'string', value: 'KEY', help: 'API key (default $TEMPORAL_API_KEY); turns TLS on' },
};

export const COMMANDS: readonly CommandSpec[] = [
  {
    name: 'run',
    positionals: ['FILE'],
    summary: 'validate a pipeline file, run its session, show progress and a results table',
    options: {
      'approve-as': { type: 'string', value: 'NAME', help: 'pre-approve long-running experiments, recorded as approved by NAME' },
      detach: { type: 'boolean', help: 'start the session, print its id and UI link, and exit (needs TEMPORAL_ADDRESS)' },
      resume: { type: 'boolean', help: 'continue experiments from their newest checkpoints of an earlier run of this session id' },
      'ui-url': { type: 'string', value: 'URL', help: 'Web UI base URL for the printed link (default $TEMPORAL_UI_URL; unset: no link, except the embedded server\'s own)' },
      ...CONNECTION_OPTIONS,
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
    options: { ...CONNECTION_OPTIONS },
  },
  {
    name: 'approve',
    positionals: ['SESSION'],
    summary: "approve a session's long-running experiments",
    options: {
      by: { type: 'string', value: 'NAME', help: 'who approves (required; recorded in the audit)' },
      note: { type: 'string', value: 'TEXT', help: 'a note for the audit record' },
      key: { type: 'string', value: 'FILE', help: 'sign the approval with this Ed25519 key (needed when the policy lists your public key)' },
      ...CONNECTION_OPTIONS,
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
      ...CONNECTION_OPTIONS,
    },
  },
  {
    name: 'keygen',
    positionals: [],
    summary: 'make an Ed25519 key pair for signed approvals',
    options: { out: { type: 'string', value: 'BASE', help: 'write BASE.key (private, mode 0600) and BASE.pub (required)' } },
  },
  {
    name: 'report',
    positionals: ['SESSION'],
    summary: 'write a self-contained HTML report of a session (curves, resumes, results, approvals, policy)',
    options: {
      out: { type: 'string', value: 'FILE', help: 'where to write it (default report-<SESSION>.html)' },
      png: { type: 'string', value: 'FILE', help: 'also render it to a PNG through Chromium (CHROMIUM_PATH, default /usr/bin/chromium)' },
      open: { type: 'boolean', help: 'open the file in the default browser (xdg-open / open)' },
      ...CONNECTION_OPTIONS,
    },
    details: `The file inlines its charting library (uPlot), script, styles and data: no network access,
so it can be mailed or archived. Works for a running session too (partial curves; run it again to
refresh). Reads only the Temporal server and the checkpoint store's metric history.`,
  },
  {
    name: 'status',
    positionals: ['ID'],
    summary: 'show a session or an experiment (<session>:<experiment>)',
    options: {
      json: { type: 'boolean', help: 'print one JSON object' },
      page: { type: 'string', value: 'N', help: "a session: show page N (from 1) of its experiments; a closed session is paged through visibility, every experiment included" },
      'page-size': { type: 'string', value: 'S', help: 'experiments per page, 1 to 200 (default 50; implies --page 1)' },
      'ui-url': { type: 'string', value: 'URL', help: 'Web UI base URL for the printed link (default $TEMPORAL_UI_URL; unset: no link)' },
      ...CONNECTION_OPTIONS,
    },
    details: `A session shows at most 50 experiments unless paged (--page, --page-size); the counts
cover every experiment, including those a long session folded away at continue-as-new.`,
  },
  {
    name: 'pause',
    positionals: ['SESSION'],
    summary: 'pause a session: running experiments checkpoint and free their workers, none starts',
    options: { ...CONNECTION_OPTIONS },
    details: 'The same as signalling `pause` to the session (for example from the Web UI). `unpause` resumes it.',
  },
  {
    name: 'unpause',
    positionals: ['SESSION'],
    summary: 'resume a paused session: its experiments continue from their checkpoints',
    options: { ...CONNECTION_OPTIONS },
  },
  {
    name: 'best',
    positionals: ['SESSION'],
    summary: "show a search session's best trial: params, metric and checkpoint (uri, sha256)",
    options: { json: { type: 'boolean', help: 'print one JSON object (null while no trial has the metric)' }, ...CONNECTION_OPTIONS },
  },
  {
    name: 'hints',
    positionals: ['ID'],
    summary: 'show how to resume an experiment, or every experiment of a session',
    options: { json: { type: 'boolean', help: 'print JSON (an array for a session)' }, ...CONNECTION_OPTIONS },
  },
  {
    name: 'metrics',
    positionals: ['EXPERIMENT_ID'],
    summary: "show an experiment's metric history (<session>:<experiment>), read from the checkpoint store",
    options: {
      json: { type: 'boolean', help: 'print every point as one JSON array' },
      csv: { type: 'boolean', help: 'print every point as CSV, one column per metric' },
      'checkpoint-url': { type: 'string', value: 'URL', help: 's3://bucket/prefix or a directory (default $EXPERIMENTS_CHECKPOINT_URL, else $EXPERIMENTS_CHECKPOINT_DIR)' },
    },
    details: `Reads the store directly: no Temporal server or worker is needed. The history is that of
the experiment's newest run, one point per epoch (its end-of-epoch checkpoint's metrics) plus
step points sampled at most once a second; after a crash and resume, the dead attempt's points
past the resume checkpoint are left out, so no epoch appears twice. Exits 2 when there is none.`,
  },
  {
    name: 'cancel',
    positionals: ['ID'],
    summary: 'interrupt an experiment (it checkpoints) or a whole session',
    options: { reason: { type: 'string', value: 'TEXT', help: 'why; recorded on the interrupted experiments' }, ...CONNECTION_OPTIONS },
  },
  {
    name: 'resume',
    positionals: ['EXPERIMENT_ID'],
    summary: "start a new run of an experiment from its newest verified checkpoint",
    options: {
      session: { type: 'string', value: 'SESSION', help: 'add it to this running session (default: a new session <session>-resume-<n>)' },
      'approve-as': { type: 'string', value: 'NAME', help: 'pre-approve the new session (for long-running experiments)' },
      'ui-url': { type: 'string', value: 'URL', help: 'Web UI base URL for the printed link (default $TEMPORAL_UI_URL; unset: no link)' },
      ...CONNECTION_OPTIONS,
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
      'metrics-port': { type: 'string', value: 'N', help: 'serve Prometheus metrics (SDK and training) on http://0.0.0.0:N/metrics (default: none)' },
      'deployment-name': { type: 'string', value: 'NAME', help: 'register a worker deployment version of this deployment and pin workflows to it (default $EXPERIMENTS_DEPLOYMENT_NAME)' },
      'build-id': { type: 'string', value: 'ID', help: 'build id of that version (default $EXPERIMENTS_BUILD_ID, else <package version>-<git sha>); implies --deployment-name experiments' },
      ...CONNECTION_OPTIONS,
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
      ...CONNECTION_OPTIONS,
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
    name: 'history export',
    positionals: ['WORKFLOW_ID'],
    summary: 'save the event history of a session or experiment workflow as JSON',
    options: {
      'run-id': { type: 'string', value: 'RUN_ID', help: 'that run of the workflow (default: the newest)' },
      out: { type: 'string', short: 'o', value: 'FILE', help: 'write to FILE (default: stdout)' },
      ...CONNECTION_OPTIONS,
    },
    details: `Writes the newest run unless --run-id is given. Connects as the \`temporal\` CLI does: the
connection profile (--profile, $TEMPORAL_PROFILE) of the config file, then $TEMPORAL_ADDRESS
(default localhost:7233), $TEMPORAL_NAMESPACE (default "default"), $TEMPORAL_API_KEY and the
TLS variables, then the flags.
Exits 0 when exported, 1 if it failed, 2 for bad usage or no such workflow, 3 if the server
cannot be reached.`,
  },
  {
    name: 'replay',
    positionals: ['FILE|DIR...'],
    variadic: true,
    summary: 'replay saved histories against the current workflow code',
    options: {
      'workflows-path': { type: 'string', value: 'MODULE', help: 'replay against your own workflows module (one that re-exports this package\'s workflows)' },
    },
    details: `A DIR stands for its *.json files. Prints one line per history and exits 0 if all
replayed, 1 if any failed, 2 for bad usage. Encrypted histories need their keys in
EXPERIMENTS_CODEC_KEYS or EXPERIMENTS_CODEC_KEY_FILE. --workflows-path is the module given to
new ExperimentPlugin({ workflowsPath }).`,
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

/**
 * Parses argv (after the command name, `history export` after both words) against a command's
 * spec with node:util's parseArgs (in its token mode, so each mistake becomes one UsageError
 * line that names the command and the fix), then checks the positionals' count.
 */
export function parseArgs(spec: CommandSpec, argv: readonly string[]): ParsedArgs {
  const parsed = parseOptions(spec, argv);
  if (parsed.help) return parsed;
  const { positionals } = parsed;
  if (positionals.length < spec.positionals.length) {
    const missing = spec.positionals.slice(positionals.length).join(' ');
    throw new UsageError(`\`experiments ${spec.name}\` needs ${missing} (usage: ${usageLine(spec)})`);
  }
  if (positionals.length > spec.positionals.length && !spec.variadic) {
    throw new UsageError(`unexpected argument ${JSON.stringify(positionals[spec.positionals.length])} for \`experiments ${spec.name}\` (usage: ${usageLine(spec)})`);
  }
  return parsed;
}

/** The options and positionals of argv, without checking how many positionals there are. */
export function parseOptions(spec: CommandSpec, argv: readonly string[]): ParsedArgs {
  const config: Record<string, { type: 'string' | 'boolean'; short?: string }> = { help: { type: 'boolean', short: 'h' } };
  for (const [name, o] of Object.entries(spec.options)) config[name] = { type: o.type, ...(o.short && { short: o.short }) };
  const { tokens } = nodeParseArgs({ args: [...argv], options: config, strict: false, allowPositionals: true, tokens: true });
  const positionals: string[] = [];
  const options: Record<string, string | boolean | undefined> = {};
  let help = false;
  const command = `\`experiments ${spec.name}\``;
  for (const token of tokens) {
    if (token.kind === 'positional') positionals.push(token.value);
    if (token.kind !== 'option') continue;
    if (token.name === 'help') {
      help = true;
      continue;
    }
    const option = Object.hasOwn(spec.options, token.name) ? spec.options[token.name] : undefined;
    if (!option) throw new UsageError(`unknown option ${token.rawName} for ${command} (see \`experiments ${spec.name} --help\`)`);
    const flag = `--${token.name}`;
    if (option.type === 'boolean') {
      if (token.value !== undefined) throw new UsageError(`option ${flag} of ${command} takes no value`);
      options[token.name] = true;
      continue;
    }
    // A following `--other` is the next option, not this one's value (pass `--name=--x` for that).
    const value = token.value === undefined || (!token.inlineValue && /^--./.test(token.value)) ? undefined : token.value;
    if (value === undefined) throw new UsageError(`option ${flag} of ${command} needs a value: ${flag} ${option.value ?? 'VALUE'}`);
    if (options[token.name] !== undefined) throw new UsageError(`option ${flag} of ${command} was given twice`);
    options[token.name] = value;
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
    for (const [name, o] of opts) lines.push(`  ${`${o.short ? `-${o.short}, ` : ''}--${name}${o.type === 'string' ? ` ${o.value ?? 'VALUE'}` : ''}`.padEnd(34)}${o.help}`);
  }
  lines.push(`${opts.length > 0 ? '' : '\nOptions:\n'}  ${'-h, --help'.padEnd(34)}show this help`);
  if (spec.details) lines.push('', spec.details);
  lines.push('', ENV_HELP);
  return lines.join('\n');
}

export function mainHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length)) + 2;
  return [
    'Usage: experiments <command> [options]',
    '',
    'Runs machine-learning experiments durably on Temporal: they survive worker crashes,',
    'restarts and cancellations, and resume from their newest verified checkpoint.',
    '',
    'Commands:',
    // Every command with every flag: the usage line is generated from the same spec as the parser.
    ...COMMANDS.flatMap((c) => [`  ${c.name.padEnd(width)}${c.summary}`, ...(c.name === 'help' ? [] : [`  ${''.padEnd(width)}${usageLine(c)}`])]),
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
