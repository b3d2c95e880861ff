/**
 * Replay: export the event history of a real session or experiment, and replay saved histories
 * against the current workflow code. A workflow change that would break running sessions shows
 * up here as a DeterminismViolationError long before it reaches a worker in production, which
 * is why users keep exported histories in their repository and replay them in CI.
 *
 * The history files are the proto-JSON format of `temporal workflow show --output json` and
 * `historyToJSON`, so histories exported by either tool replay here, and ours replay there.
 *
 * The CLI (`experiments history export`, `experiments replay`) delegates to
 * `runHistoryExportCommand` and `runReplayCommand`, which own argument parsing, output and the
 * exit code, so the CLI and library cannot disagree on them.
 */
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import * as proto from '@temporalio/proto';
import { patchProtobufRoot } from '@temporalio/proto/lib/patch-protobuf-root';
import { DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import { commandHelp, findCommand, parseOptions, type CommandSpec } from './cli/args';
import { UsageError } from './cli/errors';
import { encryptedKeyIds, missingKeyProblem } from './codec/history';
import { configFromEnv, DEFAULT_ADDRESS } from './config';
import { applyConnectionFlags, CONNECTION_FLAG_ENV, connectionOptions, type ConnectionFlag } from './connection';
import { ExperimentPlugin } from './plugin';
import { InvalidInputError } from './shared/schema';

export type History = proto.temporal.api.history.v1.IHistory;

/** JSON history as written to a file: `{ "events": [...] }` in proto JSON. */
export type HistoryJson = { events: unknown[] } & Record<string, unknown>;

// Proto JSON conversion. The SDK's historyToJSON/historyFromJSON (@temporalio/common) throw
// "type must be a Type" whenever npm gives @temporalio/common and @temporalio/proto separate
// copies of protobufjs (it does here: @grpc/proto-loader holds protobufjs 7 at the top level),
// because protojson checks `instanceof Type` against its own copy. Loading protojson from the
// copy that @temporalio/proto itself resolves keeps the types and the converter together.

interface ReflectedEnum {
  readonly values: Record<string, number>;
}
interface ReflectedField {
  readonly resolvedType: ReflectedType | ReflectedEnum | null;
}
interface ReflectedType {
  readonly fields: Record<string, ReflectedField>;
}
interface ProtoJson {
  toJson(type: ReflectedType, message: unknown): unknown;
  fromJson(type: ReflectedType, json: unknown, options?: { ignoreUnknownFields?: boolean }): unknown;
}

let codec: { protojson: ProtoJson; historyType: ReflectedType } | undefined;
function historyCodec() {
  if (!codec) {
    const protoRequire = createRequire(require.resolve('@temporalio/proto'));
    const protojson = protoRequire('protobufjs/ext/protojson') as ProtoJson;
    const root = patchProtobufRoot(proto) as unknown as { lookupType(name: string): ReflectedType; resolveAll(): void };
    root.resolveAll();
    codec = { protojson, historyType: root.lookupType('temporal.api.history.v1.History') };
  }
  return codec;
}

/** A history (as fetched by the client) in proto JSON, the format of history files. */
export function historyToJson(history: History): HistoryJson {
  const { protojson, historyType } = historyCodec();
  return protojson.toJson(historyType, proto.temporal.api.history.v1.History.fromObject(history)) as HistoryJson;
}

/**
 * A history from proto JSON. Accepts the canonical enum names (`EVENT_TYPE_TIMER_STARTED`) and
 * the short ones some Temporal tools write (`TimerStarted`); unknown fields, from a newer
 * server, are ignored.
 */
export function historyFromJson(json: unknown): History {
  const { protojson, historyType } = historyCodec();
  if (typeof json !== 'object' || json === null || !Array.isArray((json as { events?: unknown }).events)) {
    throw new TypeError('expected an object with an "events" array');
  }
  return protojson.fromJson(historyType, canonicalEnums(historyType, json), { ignoreUnknownFields: true }) as History;
}

const isEnum = (t: ReflectedType | ReflectedEnum | null): t is ReflectedEnum => t !== null && 'values' in t && !('fields' in t);

/** Rewrites short enum names to canonical ones, guided by the message types. */
function canonicalEnums(type: ReflectedType, value: unknown): unknown {
  if (Array.isArray(value)) return value.map((v) => canonicalEnums(type, v));
  if (typeof value !== 'object' || value === null) return value;
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
    const resolved = type.fields[key]?.resolvedType ?? null;
    if (resolved === null) out[key] = v;
    else if (isEnum(resolved)) out[key] = Array.isArray(v) ? v.map((e) => canonicalEnum(resolved, e)) : canonicalEnum(resolved, v);
    else if (typeof v === 'object' && v !== null && !Array.isArray(v) && (type.fields[key] as { map?: boolean }).map) {
      out[key] = Object.fromEntries(Object.entries(v).map(([k, mv]) => [k, canonicalEnums(resolved, mv)]));
    } else out[key] = canonicalEnums(resolved, v);
  }
  return out;
}

function canonicalEnum(type: ReflectedEnum, value: unknown): unknown {
  if (typeof value !== 'string' || value in type.values) return value;
  // Short names drop the enum's shared prefix (EVENT_TYPE_) and are written in PascalCase.
  const names = Object.keys(type.values);
  const shared = names.reduce((a, b) => {
    let i = 0;
    while (i < a.length && a[i] === b[i]) i++;
    return a.slice(0, i);
  });
  const prefix = shared.slice(0, shared.lastIndexOf('_') + 1);
  const candidate = prefix + value.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();
  return candidate in type.values ? candidate : value;
}

/**
 * Where the command functions write. The CLI passes
 * `{ stdout: (s) => process.stdout.write(s + '\n'), stderr: (s) => process.stderr.write(s + '\n') }`;
 * each call is one line without its trailing newline.
 */
export interface CommandIO {
  readonly stdout: (s: string) => void;
  readonly stderr: (s: string) => void;
}

/**
 * The history of one workflow run as JSON-able proto JSON (the newest run unless `runId` is
 * given). A session that continued as new has one history per run; pass each run's id.
 */
export async function exportHistory(client: Client, workflowId: string, options: { runId?: string } = {}): Promise<HistoryJson> {
  const history = await client.workflow.getHandle(workflowId, options.runId).fetchHistory();
  return historyToJson(history);
}

/** Writes a history as indented JSON (stable diffs in review), creating parent directories. */
export async function writeHistory(file: string, history: object): Promise<void> {
  await fs.promises.mkdir(path.dirname(path.resolve(file)), { recursive: true });
  await fs.promises.writeFile(file, JSON.stringify(history, null, 2) + '\n', 'utf8');
}

/** The first event's facts that name a history: workflow id, type and run id. */
export function describeHistory(history: History): { workflowId: string | undefined; workflowType: string | undefined; runId: string | undefined } {
  const started = history.events?.[0]?.workflowExecutionStartedEventAttributes;
  return {
    workflowId: started?.workflowId || undefined,
    workflowType: started?.workflowType?.name || undefined,
    runId: started?.originalExecutionRunId || undefined,
  };
}

/** Reads and validates one history file; throws an Error whose message says what is wrong. */
export function loadHistoryFile(file: string): History {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new Error(code === 'ENOENT' ? 'no such file' : `cannot read: ${(err as Error).message}`, { cause: err });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new Error(`not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  const events = (json as { events?: unknown } | null)?.events;
  if (!Array.isArray(events) || events.length === 0) throw new Error('not a workflow history: expected an object with a non-empty "events" array');
  let history: History;
  try {
    history = historyFromJson(json);
  } catch (err) {
    throw new Error(`not a workflow history: ${(err as Error).message}`, { cause: err });
  }
  if (!history.events?.[0]?.workflowExecutionStartedEventAttributes) {
    throw new Error('not a workflow history: the first event is not WorkflowExecutionStarted (was the history truncated at the start?)');
  }
  return history;
}

export interface ReplayFileResult {
  readonly file: string;
  /** From the history's start event; '' when the file could not be read. */
  readonly workflowId: string;
  readonly ok: boolean;
  readonly error?: string;
}

/**
 * Expands directories to their `*.json` files (not recursively, sorted by name); a directory
 * without any is an error entry, so a CI job pointed at the wrong directory fails instead of
 * passing with nothing replayed.
 */
export function expandHistoryPaths(paths: readonly string[]): { file: string; error?: string }[] {
  const out: { file: string; error?: string }[] = [];
  for (const p of paths) {
    let stat: fs.Stats;
    try {
      stat = fs.statSync(p);
    } catch {
      out.push({ file: p, error: 'no such file or directory' });
      continue;
    }
    if (!stat.isDirectory()) {
      out.push({ file: p });
      continue;
    }
    const files = fs
      .readdirSync(p)
      .filter((name) => name.endsWith('.json'))
      .sort()
      .map((name) => path.join(p, name));
    if (files.length === 0) out.push({ file: p, error: 'directory holds no *.json history files' });
    for (const file of files) out.push({ file });
  }
  return out;
}

/**
 * Replays each history file against the plugin's workflows (its replay configuration: the
 * plugin decides `workflowsPath`). One result per file, in order; a replay failure, a missing
 * file or an invalid one is a result with `ok: false`, never an exception. All files share
 * one replay worker, so the workflow bundle is built once.
 */
export async function replayHistoryFiles(paths: readonly string[], options: { plugin?: ExperimentPlugin } = {}): Promise<ReplayFileResult[]> {
  const plugin = options.plugin ?? new ExperimentPlugin({ installRuntimeLogger: false });
  const entries = expandHistoryPaths(paths).map((entry) => {
    if (entry.error) return { file: entry.file, workflowId: '', error: entry.error };
    try {
      const history = loadHistoryFile(entry.file);
      const { workflowId } = describeHistory(history);
      // Histories exported by servers before 1.21 lack the id; the file name stands in for it.
      const id = workflowId ?? path.basename(entry.file, '.json');
      const keyProblem = missingKeyProblem(encryptedKeyIds(history), plugin.codec);
      return keyProblem ? { file: entry.file, workflowId: id, error: keyProblem } : { file: entry.file, workflowId: id, history };
    } catch (err) {
      return { file: entry.file, workflowId: '', error: (err as Error).message };
    }
  });
  const results = new Map<number, ReplayFileResult>();
  const replayable = entries.flatMap((e, index) => (e.history ? [{ index, workflowId: e.workflowId, history: e.history }] : []));
  if (replayable.length > 0) {
    let next = 0;
    try {
      const replay = Worker.runReplayHistories({ plugins: [plugin] }, replayable);
      for await (const result of replay) {
        const { index } = replayable[next++];
        results.set(index, {
          file: entries[index].file,
          workflowId: entries[index].workflowId,
          ok: !result.error,
          ...(result.error && { error: describeReplayError(result.error) }),
        });
      }
    } catch (err) {
      // The replay worker itself failed (e.g. the workflow bundle does not build): every
      // history not yet replayed fails with that reason.
      for (const { index } of replayable.slice(next)) {
        results.set(index, { file: entries[index].file, workflowId: entries[index].workflowId, ok: false, error: `replay worker failed: ${describeReplayError(err)}` });
      }
    }
  }
  return entries.map((e, index) => results.get(index) ?? { file: e.file, workflowId: e.workflowId, ok: false, error: e.error ?? 'not replayed' });
}

function describeReplayError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  // A determinism violation wraps Core's failure in a paragraph; its own message names the
  // event and the command that disagree, which is what a reader needs.
  const core = /message: "(\[TMPRL\d+\][^"]*)"/.exec(err.message)?.[1];
  const text = core ?? firstLine(err);
  return err.name && err.name !== 'Error' ? `${err.name}: ${text}` : text;
}

/** Thrown by the argument parsers; the command functions turn it into exit code 2. */
export class ReplayUsageError extends Error {
  override readonly name = 'ReplayUsageError';
}

/** The command specs live with every other command's (src/cli/args.ts): one parser, one help format. */
const HISTORY_EXPORT_SPEC = findCommand('history export') as CommandSpec;
const REPLAY_SPEC = findCommand('replay') as CommandSpec;

export const HISTORY_EXPORT_USAGE = commandHelp(HISTORY_EXPORT_SPEC);
export const REPLAY_USAGE = commandHelp(REPLAY_SPEC);

export interface HistoryExportArgs {
  readonly workflowId: string;
  readonly runId?: string;
  readonly out?: string;
  readonly help: boolean;
  /** `--profile`, `--address`, `--namespace`, `--api-key`, as given. */
  readonly connection?: Partial<Record<ConnectionFlag, string>>;
}

export function parseHistoryExportArgs(argv: readonly string[]): HistoryExportArgs {
  const { options: values, positionals, help } = parseOrUsage(HISTORY_EXPORT_SPEC, argv);
  if (help) return { workflowId: '', help: true };
  const connection = Object.fromEntries(Object.keys(CONNECTION_FLAG_ENV).map((flag) => [flag, values[flag] as string | undefined]));
  if (positionals.length !== 1) {
    throw new ReplayUsageError(`history export: expected one WORKFLOW_ID, received ${positionals.length === 0 ? 'none' : positionals.map((p) => JSON.stringify(p)).join(' ')}`);
  }
  return { workflowId: positionals[0], runId: values['run-id'] as string | undefined, out: values.out as string | undefined, help: false, connection };
}

export interface ReplayArgs {
  readonly paths: string[];
  readonly workflowsPath?: string;
  readonly help: boolean;
}

export function parseReplayArgs(argv: readonly string[]): ReplayArgs {
  const { options: values, positionals, help } = parseOrUsage(REPLAY_SPEC, argv);
  if (help) return { paths: [], help: true };
  if (positionals.length === 0) throw new ReplayUsageError('replay: expected at least one history FILE or DIR');
  return { paths: positionals, workflowsPath: values['workflows-path'] as string | undefined, help: false };
}

function parseOrUsage(spec: CommandSpec, argv: readonly string[]) {
  try {
    return parseOptions(spec, argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    throw new ReplayUsageError(err.message, { cause: err });
  }
}

/**
 * `experiments history export WORKFLOW_ID [--run-id RUN_ID] [--out FILE]`; `argv` is what
 * follows `history export`. Returns the CLI's exit codes: 0 exported, 1 failed (e.g. the file
 * cannot be written), 2 bad usage or no such workflow, 3 the server cannot be reached.
 * `env` (default process.env) supplies TEMPORAL_ADDRESS and TEMPORAL_NAMESPACE.
 */
export async function runHistoryExportCommand(argv: readonly string[], io: CommandIO, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let args: HistoryExportArgs;
  try {
    args = parseHistoryExportArgs(argv);
  } catch (err) {
    if (!(err instanceof ReplayUsageError)) throw err;
    io.stderr(`error: ${err.message}`);
    io.stderr(HISTORY_EXPORT_USAGE);
    return 2;
  }
  if (args.help) {
    io.stdout(HISTORY_EXPORT_USAGE);
    return 0;
  }
  const flagged = { ...env };
  applyConnectionFlags(args.connection ?? {}, flagged);
  const config = configFromEnv(flagged);
  const address = config.address ?? DEFAULT_ADDRESS;
  let connection: Connection | undefined;
  try {
    try {
      connection = await Connection.connect(connectionOptions(config.connection, address));
    } catch (err) {
      io.stderr(`cannot reach the Temporal server at ${address} (TEMPORAL_ADDRESS): ${firstLine(err)}`);
      return 3;
    }
    const client = new Client({ connection, namespace: config.namespace });
    const history = await exportHistory(client, args.workflowId, { runId: args.runId });
    if (args.out) {
      await writeHistory(args.out, history);
      io.stdout(`exported ${args.workflowId} (${history.events.length} events) to ${args.out}`);
    } else {
      io.stdout(JSON.stringify(history, null, 2));
    }
    return 0;
  } catch (err) {
    if (isNotFound(err)) {
      io.stderr(`no workflow with id ${JSON.stringify(args.workflowId)}${args.runId ? ` and run id ${args.runId}` : ''} in namespace ${config.namespace} at ${address}`);
      return 2;
    }
    io.stderr(`history export failed: ${firstLine(err)}`);
    return 1;
  } finally {
    await connection?.close();
  }
}

const firstLine = (err: unknown) => (err instanceof Error ? err.message : String(err)).split('\n')[0];

/** fetchHistory reports an unknown workflow as a gRPC NOT_FOUND (code 5), not WorkflowNotFoundError. */
function isNotFound(err: unknown): boolean {
  const e = err as { name?: string; code?: unknown; cause?: { code?: unknown } } | null;
  return e?.name === 'WorkflowNotFoundError' || e?.code === 5 || e?.cause?.code === 5;
}

/**
 * `experiments replay FILE|DIR... [--workflows-path MODULE]`; `argv` is what follows `replay`.
 * stdout gets one line per history, `ok   <file> (<workflowId>)` or `FAIL <file>: <reason>`,
 * stderr a summary. Returns 0 if all replayed, 1 if any failed, 2 for bad usage.
 */
export async function runReplayCommand(argv: readonly string[], io: CommandIO, options: { plugin?: ExperimentPlugin } = {}): Promise<number> {
  let args: ReplayArgs;
  try {
    args = parseReplayArgs(argv);
  } catch (err) {
    if (!(err instanceof ReplayUsageError)) throw err;
    io.stderr(`error: ${err.message}`);
    io.stderr(REPLAY_USAGE);
    return 2;
  }
  if (args.help) {
    io.stdout(REPLAY_USAGE);
    return 0;
  }
  // A command owns its process: unless a Runtime exists already (the caller installed its
  // logger), keep the replay workers' bundler reports off the terminal and show warnings only.
  try {
    Runtime.install({ logger: new DefaultLogger('WARN') });
  } catch {
    // A Runtime exists; its logger stays.
  }
  let plugin: ExperimentPlugin;
  try {
    plugin = options.plugin ?? new ExperimentPlugin({ installRuntimeLogger: false, ...(args.workflowsPath && { workflowsPath: path.resolve(args.workflowsPath) }) });
  } catch (err) {
    // A bad key variable (EXPERIMENTS_CODEC_KEYS) is bad input: one line, exit 2.
    if (!(err instanceof InvalidInputError)) throw err;
    io.stderr(`error: ${firstLine(err)}`);
    return 2;
  }
  const results = await replayHistoryFiles(args.paths, { plugin });
  for (const r of results) io.stdout(r.ok ? `ok   ${r.file} (${r.workflowId})` : `FAIL ${r.file}: ${r.error ?? 'unknown error'}`);
  const failed = results.filter((r) => !r.ok).length;
  io.stderr(`${results.length} ${results.length === 1 ? 'history' : 'histories'} replayed, ${failed} failed`);
  return failed === 0 ? 0 : 1;
}
