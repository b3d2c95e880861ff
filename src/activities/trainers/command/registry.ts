/**
 * The programs a worker agrees to run. The `command` trainer never takes an executable, an
 * argument, a working directory or an environment variable from a spec: those are fixed here,
 * by whoever deploys the worker (the plugin's `programs` option, or a programs file given to
 * `experiments worker --programs FILE`). A spec names a registered program and gives only the
 * program's own params (EXPERIMENT_PARAMS), optionally checked against a JSON Schema the
 * program declares. docs/trainer-protocol.md section 13 is the reference.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { parseDuration } from '../../../shared/duration';
import { formatIssues, InvalidInputError, parseOrThrow } from '../../../shared/schema';

/** A program as the worker's operator declares it. */
export interface ProgramDefinition {
  /** What specs name in `params.program`: letters, digits, `.`, `_`, `-` (1 to 128). */
  readonly name: string;
  /**
   * argv of the program, never a shell string. `argv[0]` is looked up on the worker's PATH
   * unless it contains a `/`; a relative path is taken from `cwd`.
   */
  readonly argv: readonly string[];
  /**
   * Working directory of the child. In a programs file a relative one is taken from the file's
   * directory; in the plugin option, from the worker's working directory when the plugin is built.
   * @default the directory of the programs file, else the worker's working directory
   */
  readonly cwd?: string;
  /** Extra variables the child gets; they override PATH, HOME, LANG and inherited ones. @default {} */
  readonly env?: Readonly<Record<string, string>>;
  /** Names of worker environment variables passed through to the child when set there. @default [] */
  readonly inheritEnv?: readonly string[];
  /** Time between SIGTERM and SIGKILL when a run is interrupted (at most `1h`). @default '10s' */
  readonly gracePeriod?: string;
  /**
   * Name of a top-level integer param holding the total epochs, for progress and hints before
   * the program reports `epochs` itself (e.g. `'epochs'`). @default none
   */
  readonly epochsParam?: string;
  /**
   * A JSON Schema (draft 2020-12, as zod's `fromJSONSchema` reads it) for the program's params.
   * A spec whose params do not match is rejected before anything starts, naming the field.
   * @default none: any JSON object is passed through
   */
  readonly paramsSchema?: Readonly<Record<string, unknown>> | boolean;
}

/** A registered program, resolved and validated. */
export interface Program {
  readonly name: string;
  readonly argv: readonly string[];
  /** Absolute. */
  readonly cwd: string;
  readonly env: Readonly<Record<string, string>>;
  readonly inheritEnv: readonly string[];
  readonly gracePeriodMs: number;
  readonly epochsParam: string | undefined;
  /** Throws an Error naming `<prefix>.<field>` when `params` do not match the program's schema. */
  checkParams(params: Readonly<Record<string, unknown>>, prefix: string): void;
}

export const DEFAULT_GRACE_PERIOD = '10s';
/** An upper bound so that a typo (`10m` for `10s`) cannot hold a cancelled run for hours. */
const MAX_GRACE_MS = 3_600_000;
const RESERVED_PREFIX = 'EXPERIMENT_';

const noNul = (s: string) => !s.includes('\0');
const envName = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected an environment variable name (letters, digits and _, not starting with a digit)')
  .refine((n) => !n.startsWith(RESERVED_PREFIX), `expected a name that does not start with ${RESERVED_PREFIX} (the plugin sets those)`);
const text = z.string().refine(noNul, 'expected a string without NUL characters');

export const programDefinitionSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9._-]{1,128}$/, 'expected 1 to 128 letters, digits, ".", "_" or "-"'),
  argv: z.array(text).min(1, 'expected a non-empty array of strings (argv; never a shell string)').refine((a) => a[0] !== '', 'expected argv[0], the program to run, to be non-empty'),
  cwd: text.min(1).optional(),
  // Keys checked one by one: zod's record key errors would not say what was wrong with the name.
  env: z
    .record(z.string(), text)
    .superRefine((env, ctx) => {
      for (const name of Object.keys(env)) {
        const bad = envName.safeParse(name);
        if (!bad.success) ctx.addIssue({ code: 'custom', path: [name], message: `${bad.error.issues[0].message}, received ${JSON.stringify(name)}` });
      }
    })
    .optional(),
  inheritEnv: z.array(envName).optional(),
  gracePeriod: z
    .string()
    .refine((v) => parseDuration(v) !== undefined, "expected a duration such as '10s' or '1m'")
    .refine((v) => (parseDuration(v) ?? 0) <= MAX_GRACE_MS, 'expected a duration of at most 1h')
    .optional(),
  epochsParam: z.string().min(1).optional(),
  paramsSchema: z.union([z.record(z.string(), z.unknown()), z.boolean()]).optional(),
});

export const programsFileSchema = z.strictObject({ programs: z.array(programDefinitionSchema) });

function compileSchema(def: ProgramDefinition, field: string): Program['checkParams'] {
  if (def.paramsSchema === undefined) return () => undefined;
  let schema: z.ZodType;
  try {
    schema = z.fromJSONSchema(def.paramsSchema as Parameters<typeof z.fromJSONSchema>[0]);
  } catch (err) {
    throw new InvalidInputError([`${field}.paramsSchema: expected a JSON Schema zod can read, received one it cannot (${(err as Error).message})`]);
  }
  return (params, prefix) => {
    const parsed = schema.safeParse(params, { reportInput: true });
    if (!parsed.success) throw new Error(formatIssues(parsed.error, prefix).join('; '));
  };
}

function resolveProgram(def: ProgramDefinition, baseDir: string, field: string): Program {
  const valid = parseOrThrow(programDefinitionSchema, def, field);
  return {
    name: valid.name,
    argv: [...valid.argv],
    cwd: path.resolve(baseDir, valid.cwd ?? '.'),
    env: { ...valid.env },
    inheritEnv: [...(valid.inheritEnv ?? [])],
    gracePeriodMs: parseDuration(valid.gracePeriod ?? DEFAULT_GRACE_PERIOD) as number,
    epochsParam: valid.epochsParam,
    checkParams: compileSchema(def, field),
  };
}

/** The programs one worker runs, by name. Empty means the `command` trainer runs nothing. */
export class ProgramRegistry {
  private readonly byName = new Map<string, Program>();

  /**
   * @param definitions validated here; a bad field or a duplicate name throws InvalidInputError naming it
   * @param baseDir what relative `cwd`s are taken from. @default the working directory
   * @param source how errors name the list (`programs`, or a file path)
   */
  constructor(definitions: readonly ProgramDefinition[] = [], baseDir = process.cwd(), source = 'programs') {
    definitions.forEach((def, i) => {
      const field = `${source}[${i}]`;
      const program = resolveProgram(def, baseDir, field);
      if (this.byName.has(program.name)) {
        throw new InvalidInputError([`${field}.name: expected a unique program name, received duplicate ${JSON.stringify(program.name)}`]);
      }
      this.byName.set(program.name, program);
    });
  }

  get(name: string): Program | undefined {
    return this.byName.get(name);
  }

  names(): string[] {
    return [...this.byName.keys()].sort();
  }

  get size(): number {
    return this.byName.size;
  }

  /** The programs of a programs file; relative `cwd`s are taken from the file's directory. */
  static fromFile(file: string): ProgramRegistry {
    return new ProgramRegistry(loadProgramsFile(file), path.dirname(path.resolve(file)), `${file}: programs`);
  }
}

/**
 * Reads a programs file (`{ "programs": [ ... ] }`, JSON, or YAML for `.yaml`/`.yml`). Throws
 * InvalidInputError naming the file and the path of a bad field (`progs.yaml: programs[1].argv`).
 */
export function loadProgramsFile(file: string): ProgramDefinition[] {
  let textContent: string;
  try {
    textContent = readFileSync(file, 'utf8');
  } catch (err) {
    throw new InvalidInputError([`${file}: cannot read the programs file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`]);
  }
  let raw: unknown;
  try {
    raw = /\.ya?ml$/i.test(file) ? parseYaml(textContent) : JSON.parse(textContent);
  } catch (err) {
    throw new InvalidInputError([`${file}: expected ${/\.ya?ml$/i.test(file) ? 'YAML' : 'JSON'}, received text that does not parse (${(err as Error).message.split('\n')[0]})`]);
  }
  try {
    return parseOrThrow(programsFileSchema, raw).programs as ProgramDefinition[];
  } catch (err) {
    if (err instanceof InvalidInputError) throw new InvalidInputError(err.problems.map((p) => `${file}: ${p}`));
    throw err;
  }
}
