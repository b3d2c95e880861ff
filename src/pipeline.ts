/**
 * Pipeline files: reading a JSON or YAML file, expanding its sweeps, and validating the whole
 * thing before anything starts. This module is pure input handling, with no Temporal
 * connection: the CLI calls it before it starts a server, a worker or a session, so bad input
 * fails fast with exit code 2 and leaves nothing behind.
 *
 * Every problem is reported as a path inside the file (`experiments[3].params.lr`,
 * `sweeps[0].grid.lr[1]`, `policy.heartbeatTimeout`), because that is what a person edits.
 */
import { readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import YAML from 'yaml';
import { idProblem } from './shared/ids';
import { expandSweep, sweepSize, type Sweep, type SweepPoint } from './shared/sweep';
import { InvalidInputError, MAX_EXPERIMENTS, parseOrThrow, pipelineSchema } from './shared/schema';
import type { ResolvedPolicy } from './shared/policy';
import type { ApproveInput, ExperimentSpec, SessionPolicy } from './shared/types';

/** Largest pipeline file read, so a wrong path (a dataset, a log) fails fast instead of filling memory. */
export const MAX_PIPELINE_BYTES = 10 * 1024 * 1024;

export { expandSweep, sweepSize, type Sweep, type SweepPoint } from './shared/sweep';

/**
 * What validates experiments and policies: ExperimentsClient does, with the trainers that the
 * workers know. An interface rather than the class so callers can validate before connecting.
 */
export interface SpecValidator {
  validateExperiments(raw: readonly unknown[], existing?: readonly string[], prefix?: string): ExperimentSpec[];
  validatePolicy(raw: unknown): unknown;
  /** Rejects a search metric no trainer of the specs reports (when they all declare theirs). */
  checkSearchMetric?(policy: ResolvedPolicy, specs: readonly ExperimentSpec[]): void;
}

export interface Pipeline {
  /** The file it came from, as given (for messages). */
  readonly file: string | null;
  /** Undefined only when loaded with `requireSession: false` and the file names none. */
  readonly session: string | undefined;
  readonly policy: SessionPolicy | undefined;
  /** Explicit experiments first, then every sweep's expansion in order. */
  readonly experiments: ExperimentSpec[];
  /** The explicit experiments alone, and the sweeps as defined (each point checked). */
  readonly explicit: ExperimentSpec[];
  readonly sweeps: Sweep[];
  readonly preApproved: ApproveInput | undefined;
}

export interface ParseOptions {
  /** `run` needs a session id in the file; `submit` takes it from the command line. @default true */
  readonly requireSession?: boolean;
  /** Ids already in the session (for `submit`): a new experiment may not reuse one. */
  readonly existingIds?: readonly string[];
}

/** A problem with the file itself (missing, unreadable, not JSON/YAML), as one line. */
export class PipelineFileError extends InvalidInputError {
  constructor(file: string, problem: string) {
    super([`${file}: ${problem}`]);
  }
}

/** Reads and parses a pipeline file by extension: `.json`, `.yaml` or `.yml`. */
export function readPipelineFile(file: string): unknown {
  const ext = path.extname(file).toLowerCase();
  if (!['.json', '.yaml', '.yml'].includes(ext)) {
    throw new PipelineFileError(file, `expected a .json, .yaml or .yml file, received ${ext ? `a ${ext} file` : 'a file without extension'}`);
  }
  let text: string;
  try {
    const st = statSync(file);
    if (st.isDirectory()) throw new PipelineFileError(file, 'expected a file, received a directory');
    if (st.size > MAX_PIPELINE_BYTES) throw new PipelineFileError(file, `expected at most ${MAX_PIPELINE_BYTES} bytes, received ${st.size}`);
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if (err instanceof PipelineFileError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (err as Error).message;
    throw new PipelineFileError(file, `cannot read the pipeline file (${why})`);
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  return ext === '.json' ? parseJson(file, text) : parseYaml(file, text);
}

function parseJson(file: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    // V8's messages differ between versions and often carry no position; find it ourselves.
    const found = locateJsonError(text) ?? { offset: text.length, message: (err as Error).message };
    const { line, column } = lineAndColumn(text, found.offset);
    throw new PipelineFileError(file, `invalid JSON at line ${line}, column ${column}: ${found.message}`);
  }
}

function parseYaml(file: string, text: string): unknown {
  const docs = YAML.parseAllDocuments(text, { prettyErrors: false, uniqueKeys: true });
  const list = Array.isArray(docs) ? docs : [docs];
  if (list.length > 1) {
    const { line, column } = lineAndColumn(text, list[1].range[0]);
    throw new PipelineFileError(file, `invalid YAML at line ${line}, column ${column}: expected one document, found a second one`);
  }
  const doc = list[0];
  if (!doc) return null;
  const problem = doc.errors[0];
  if (problem) {
    const { line, column } = lineAndColumn(text, problem.pos[0]);
    const message = problem.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '');
    throw new PipelineFileError(file, `invalid YAML at line ${line}, column ${column}: ${message}`);
  }
  try {
    return doc.toJS({ maxAliasCount: 1000 });
  } catch (err) {
    throw new PipelineFileError(file, `invalid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
}

function lineAndColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, Math.max(0, Math.min(offset, text.length)));
  const lines = before.split('\n');
  return { line: lines.length, column: lines[lines.length - 1].length + 1 };
}

/**
 * Finds the first JSON syntax error: a small recursive-descent scanner that only tracks the
 * position. Returns undefined when it finds none (then JSON.parse's own message is used).
 */
export function locateJsonError(text: string): { offset: number; message: string } | undefined {
  let i = 0;
  class Stop {
    constructor(
      readonly offset: number,
      readonly message: string,
    ) {}
  }
  const fail = (message: string, at = i): never => {
    throw new Stop(at, message);
  };
  const ws = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i])) i++;
  };
  const describeAt = () => (i >= text.length ? 'the end of the file' : JSON.stringify(text[i]));
  const literal = (word: string) => {
    if (text.startsWith(word, i)) i += word.length;
    else fail(`expected a value, found ${describeAt()}`);
  };
  const string = () => {
    i++; // opening quote
    for (;;) {
      if (i >= text.length) fail('unterminated string');
      const c = text[i];
      if (c === '"') {
        i++;
        return;
      }
      if (c === '\n') fail('unterminated string (a line break inside quotes)');
      if (c.charCodeAt(0) < 0x20) fail('control character inside a string');
      if (c === '\\') {
        const e = text[i + 1];
        if (e === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) fail('bad \\u escape in a string');
          i += 6;
          continue;
        }
        if (e === undefined || !'"\\/bfnrt'.includes(e)) fail(`bad escape ${JSON.stringify(`\\${e ?? ''}`)} in a string`);
        i += 2;
        continue;
      }
      i++;
    }
  };
  const number = () => {
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i, i + 400));
    if (!m || m[0] === '-' || m[0] === '') fail(`expected a value, found ${describeAt()}`);
    i += (m as RegExpExecArray)[0].length;
  };
  const value = (depth: number): void => {
    if (depth > 500) fail('nested too deeply');
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      ws();
      if (text[i] === '}') {
        i++;
        return;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail(text[i] === '}' ? 'trailing comma before "}"' : `expected a double-quoted property name, found ${describeAt()}`);
        string();
        ws();
        if (text[i] !== ':') fail(`expected ':' after a property name, found ${describeAt()}`);
        i++;
        value(depth + 1);
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === '}') {
          i++;
          return;
        }
        fail(`expected ',' or '}' after a property value, found ${describeAt()}`);
      }
    }
    if (c === '[') {
      i++;
      ws();
      if (text[i] === ']') {
        i++;
        return;
      }
      for (;;) {
        ws();
        if (text[i] === ']') fail('trailing comma before "]"');
        value(depth + 1);
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === ']') {
          i++;
          return;
        }
        fail(`expected ',' or ']' after an array element, found ${describeAt()}`);
      }
    }
    if (c === '"') return string();
    if (c === 't') return literal('true');
    if (c === 'f') return literal('false');
    if (c === 'n') return literal('null');
    if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) return number();
    fail(`expected a value, found ${describeAt()}`);
  };
  try {
    value(0);
    ws();
    if (i < text.length) fail(`unexpected ${describeAt()} after the end of the JSON value`);
    return undefined;
  } catch (err) {
    if (err instanceof Stop) return { offset: err.offset, message: err.message };
    throw err;
  }
}

/**
 * Validates a parsed pipeline document: structure with `pipelineSchema`, the policy, every
 * explicit experiment and every sweep point with the validator (so trainer params are checked
 * too), and id uniqueness across all of them. Throws InvalidInputError naming paths.
 */
export function parsePipeline(raw: unknown, validator: SpecValidator, options: ParseOptions = {}): Omit<Pipeline, 'file'> {
  const requireSession = options.requireSession ?? true;
  const schema = requireSession ? pipelineSchema : pipelineSchema.partial({ session: true });
  if (raw === null || raw === undefined) throw new InvalidInputError(['(root): expected an object with "session" and "experiments" or "sweeps", received an empty document']);
  const doc = parseOrThrow(schema, raw);
  const problems: string[] = [];
  const collect = (fn: () => void) => {
    try {
      fn();
    } catch (err) {
      if (err instanceof InvalidInputError) problems.push(...err.problems);
      else problems.push((err as Error).message);
    }
  };

  if (doc.policy !== undefined) collect(() => validator.validatePolicy(doc.policy));

  const explicit = doc.experiments ?? [];
  const sweeps = doc.sweeps ?? [];
  if (explicit.length === 0 && sweeps.length === 0) {
    throw new InvalidInputError(['experiments: expected at least one experiment in "experiments" or "sweeps", received none']);
  }
  const total = explicit.length + sweeps.reduce((n, s) => n + sweepSize(s), 0);
  if (total > MAX_EXPERIMENTS) {
    throw new InvalidInputError([`(root): expected at most ${MAX_EXPERIMENTS} experiments in total, received ${total} (counting every sweep combination)`]);
  }

  const specs: ExperimentSpec[] = [];
  // Where each id was first defined, for duplicate messages across experiments and sweeps.
  const owner = new Map<string, string>();
  for (const id of options.existingIds ?? []) owner.set(id, 'the session');

  let explicitSpecs: ExperimentSpec[] = [];
  collect(() => {
    explicitSpecs = validator.validateExperiments(explicit, options.existingIds ?? [], 'experiments');
  });
  explicitSpecs.forEach((spec, i) => owner.set(spec.id, `experiments[${i}]`));
  specs.push(...explicitSpecs);
  if (explicitSpecs.length === 0 && explicit.length > 0) {
    // Explicit experiments failed validation; still record their ids so sweep duplicates are named.
    explicit.forEach((e, i) => {
      const id = (e as { id?: unknown } | null)?.id;
      if (typeof id === 'string' && !owner.has(id)) owner.set(id, `experiments[${i}]`);
    });
  }

  specs.push(...checkSweepPoints(sweeps, validator, owner, problems));

  if (problems.length === 0 && doc.policy?.search && validator.checkSearchMetric) {
    const resolved = validator.validatePolicy(doc.policy);
    collect(() => validator.checkSearchMetric?.(resolved as ResolvedPolicy, specs));
  }
  if (problems.length > 0) throw new InvalidInputError(problems);
  return { session: doc.session, policy: doc.policy, experiments: specs, explicit: explicitSpecs, sweeps, preApproved: doc.preApproved };
}

/**
 * Every point of `sweeps` as a validated spec: a valid id, unique against `owner` (ids already
 * used, with where; each point is added) and the trainer's params. A problem is pushed to
 * `problems` once per sweep, at the path a person edits (`sweeps[0].grid.lr[1]`).
 */
export function checkSweepPoints(sweeps: readonly Sweep[], validator: Pick<SpecValidator, 'validateExperiments'>, owner: Map<string, string>, problems: string[]): ExperimentSpec[] {
  const specs: ExperimentSpec[] = [];
  sweeps.forEach((sweep, s) => {
    const at = `sweeps[${s}]`;
    const seenProblems = new Set<string>();
    const add = (problem: string) => {
      if (!seenProblems.has(problem)) {
        seenProblems.add(problem);
        problems.push(problem);
      }
    };
    for (const point of expandSweep(sweep)) {
      const where =
        point.sample !== undefined
          ? `sample ${point.sample}`
          : Object.entries(point.indices)
              .map(([k, j]) => `${k}=${JSON.stringify(sweep.grid?.[k][j])}`)
              .join(', ');
      const idIssue = idProblem('', point.spec.id);
      if (idIssue) {
        add(`${at}.idPrefix: the derived experiment id for ${where} is not a valid id: ${idIssue.replace(/^: /, '')}`);
        continue;
      }
      const first = owner.get(point.spec.id);
      if (first !== undefined) {
        add(`${at}.${sweep.random ? 'idPrefix' : 'grid'}: expected unique experiment ids, but ${where} gives ${JSON.stringify(point.spec.id)}, already used by ${first}`);
        continue;
      }
      try {
        const [spec] = validator.validateExperiments([point.spec], [], '@');
        owner.set(spec.id, `${at} (${where})`);
        specs.push(spec);
      } catch (err) {
        const lines = err instanceof InvalidInputError ? err.problems : [(err as Error).message];
        for (const line of lines) add(sweepProblemPath(at, point, line));
      }
    }
  });
  return specs;
}

/**
 * Maps a problem reported for one expanded sweep point (`@[0].params.lr: …`) back to where it
 * can be fixed: the grid value (`sweeps[0].grid.lr[1]`) or the sweep's own field.
 */
function sweepProblemPath(at: string, point: SweepPoint, line: string): string {
  const rest = line.replace(/^@\[0\]\.?/, '');
  const drawn = (point.drawn ?? []).find((k) => rest === `params.${k}` || rest.startsWith(`params.${k}:`) || rest.startsWith(`params.${k}.`));
  if (drawn !== undefined) return `${at}.random.space.${drawn} (sample ${point.sample})${rest.slice(`params.${drawn}`.length)}`;
  // The longest grid key the problem's path starts with (`params.params.lr` for grid key `params.lr`).
  const key = Object.keys(point.indices)
    .sort((x, y) => y.length - x.length)
    .find((k) => rest === `params.${k}` || rest.startsWith(`params.${k}.`) || rest.startsWith(`params.${k}:`) || rest.startsWith(`params.${k}[`));
  if (key !== undefined) return `${at}.grid.${key}[${point.indices[key]}]${rest.slice(`params.${key}`.length)}`;
  if (rest.startsWith('trainer') || rest.startsWith('estimatedDuration') || rest.startsWith('longRunning') || rest.startsWith('params')) return `${at}.${rest}`;
  if (rest.startsWith('id')) return `${at}.idPrefix${rest.slice(2)}`;
  return `${at}: ${rest}`;
}

/** Reads, parses and validates a pipeline file. Throws InvalidInputError with the file name in front. */
export function loadPipeline(file: string, validator: SpecValidator, options: ParseOptions = {}): Pipeline {
  const raw = readPipelineFile(file);
  try {
    return { file, ...parsePipeline(raw, validator, options) };
  } catch (err) {
    if (err instanceof InvalidInputError) throw new InvalidInputError(err.problems.map((p) => `${file}: ${p}`));
    throw err;
  }
}
