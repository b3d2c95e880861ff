/**
 * Sweeps, pure: the experiments a sweep definition stands for, addressable by index, so that a
 * session can hold a sweep of 10,000 points as its definition and a cursor (sweeps by reference,
 * src/workflows/session/feed.ts) and the pipeline reader can expand and check every point
 * (src/pipeline.ts). Runs in the workflow sandbox: no I/O, no clock, no Math.random.
 *
 * A grid is the cartesian product of its values, first key varying slowest; point `n` is the
 * mixed-radix decomposition of `n`. A random sweep's point `n` is draw `n` of its seeded space.
 */
import type { z } from 'zod';
import type { sweepSchema } from './schema';
import { drawPoint, hashSeed, idValue } from './search/random';

export type Sweep = z.infer<typeof sweepSchema>;
type GridValue = NonNullable<Sweep['grid']>[string][number];

/** What a session carries of its sweeps by reference across continue-as-new (SessionCarry.feed). */
export interface SweepFeedState {
  /** Sweeps with points still to feed, in order. */
  readonly sweeps: readonly Sweep[];
  /** For each sweep, the index of its next point. */
  readonly next: readonly number[];
  /**
   * Workflow time (ms) when the first point fed without an approval began waiting for one: later
   * points wait from then too (they were submitted with it), so approvalTimeout is sweep-wide.
   */
  readonly waitingSince?: number;
  /** Why long-running points are rejected as they are fed (a `reject` of the session), until an approval. */
  readonly rejected?: string;
}

/** One experiment of a sweep, with the grid indices (or the random sample) it came from (for error paths). */
export interface SweepPoint {
  readonly spec: { id: string; trainer: string; params: Record<string, unknown>; estimatedDuration?: string; longRunning?: boolean };
  readonly indices: Readonly<Record<string, number>>;
  /** Index of the draw, for a `random` sweep. */
  readonly sample?: number;
  /** The keys drawn from the random space. */
  readonly drawn?: readonly string[];
}

/** Number of experiments a sweep expands to: its grid's combinations, or its random samples. */
export function sweepSize(sweep: Pick<Sweep, 'grid' | 'random'>): number {
  if (sweep.random) return sweep.random.samples;
  return Object.values(sweep.grid ?? {}).reduce((n, values) => n * values.length, 1);
}

/** Every id of the sweep starts with this (ids are `<idPrefix>-<parts>`). */
export const sweepIdStem = (sweep: Pick<Sweep, 'idPrefix'>): string => `${sweep.idPrefix}-`;

/**
 * The id part for one grid value: key then value, with characters outside the id alphabet
 * replaced by `_` (ids become workflow ids and directory names, see shared/ids.ts).
 */
function idPart(key: string, value: GridValue): string {
  const text = idValue(value);
  return `${key.slice(key.lastIndexOf('.') + 1)}${text}`.replace(/[^A-Za-z0-9._-]/g, '_').replace(/\.{2,}/g, '.');
}

/** `params` with `value` at a dotted `key` (`params.lr`), copying each object on the way. */
function withValue(params: Record<string, unknown>, key: string, value: GridValue): Record<string, unknown> {
  const [head, ...rest] = key.split('.');
  if (rest.length === 0) return { ...params, [head]: value };
  const inner = params[head];
  const base = typeof inner === 'object' && inner !== null && !Array.isArray(inner) ? (inner as Record<string, unknown>) : {};
  return { ...params, [head]: withValue(base, rest.join('.'), value) };
}

function sweepSpec(sweep: Sweep, id: string, params: Record<string, unknown>): SweepPoint['spec'] {
  const spec: SweepPoint['spec'] = { id, trainer: sweep.trainer, params };
  if (sweep.estimatedDuration !== undefined) spec.estimatedDuration = sweep.estimatedDuration;
  if (sweep.longRunning !== undefined) spec.longRunning = sweep.longRunning;
  return spec;
}

/**
 * Point `index` (0-based, below sweepSize) of a sweep.
 *
 * Grid: `{ idPrefix: 'mlp', grid: { lr: [0.1, 0.01], hidden: [16, 32] } }` gives, in order,
 * `mlp-lr0.1-hidden16`, `mlp-lr0.1-hidden32`, `mlp-lr0.01-hidden16`, `mlp-lr0.01-hidden32`.
 * Grid values override the sweep's base `params`; a dotted key (`params.lr`) sets a nested one,
 * and its id part uses the last segment (`lr0.1`).
 *
 * Random: `{ idPrefix: 'mlp', random: { samples: 2, space: { lr: { loguniform: [1e-4, 1e-1] } } } }`
 * gives `mlp-0-lr0.00312` and `mlp-1-lr0.0457` (values in ids to 3 significant digits; the
 * params hold the full value). The seed is `random.seed`, or a hash of the idPrefix, so the
 * same definition always draws the same trials.
 */
export function sweepPointAt(sweep: Sweep, index: number): SweepPoint {
  const size = sweepSize(sweep);
  if (!Number.isSafeInteger(index) || index < 0 || index >= size) throw new RangeError(`sweep ${sweep.idPrefix}: point ${index} is outside 0..${size - 1}`);
  let params: Record<string, unknown> = { ...(sweep.params ?? {}) };
  if (sweep.random) {
    const { random } = sweep;
    const drawn = drawPoint(random.space, random.seed ?? hashSeed(sweep.idPrefix), index);
    const parts = [String(index).padStart(String(random.samples - 1).length, '0')];
    for (const [key, value] of Object.entries(drawn)) {
      params = withValue(params, key, value);
      parts.push(idPart(key, value));
    }
    return { spec: sweepSpec(sweep, [sweep.idPrefix, ...parts].join('-'), params), indices: {}, sample: index, drawn: Object.keys(drawn) };
  }
  const grid = sweep.grid ?? {};
  const keys = Object.keys(grid);
  // Mixed radix, the last key varying fastest.
  const indices: Record<string, number> = {};
  let rest = index;
  for (let k = keys.length - 1; k >= 0; k--) {
    const n = grid[keys[k]].length;
    indices[keys[k]] = rest % n;
    rest = Math.floor(rest / n);
  }
  const parts: string[] = [];
  const ordered: Record<string, number> = {};
  for (const key of keys) {
    const value = grid[key][indices[key]];
    params = withValue(params, key, value);
    parts.push(idPart(key, value));
    ordered[key] = indices[key];
  }
  return { spec: sweepSpec(sweep, [sweep.idPrefix, ...parts].join('-'), params), indices: ordered };
}

/** Every point of a sweep, in order. */
export function expandSweep(sweep: Sweep): SweepPoint[] {
  return Array.from({ length: sweepSize(sweep) }, (_, n) => sweepPointAt(sweep, n));
}

/**
 * Why these sweeps cannot be passed by reference next to experiments with `experimentIds`: a
 * sweep's points are only known by their stem (`<idPrefix>-`) until they are fed, so no other
 * id may start with a sweep's stem, and no two stems may overlap. Each issue names the sweep's
 * index (its `idPrefix` is the field at fault). Empty: they can. `name` says how a message names
 * another sweep it overlaps; @default `sweeps[<index>]`.
 */
export function sweepStemIssues(
  experimentIds: readonly string[],
  sweeps: readonly Pick<Sweep, 'idPrefix'>[],
  name: (index: number) => string = (index) => `sweeps[${index}]`,
): { index: number; message: string }[] {
  const issues: { index: number; message: string }[] = [];
  const stems = sweeps.map(sweepIdStem);
  stems.forEach((stem, index) => {
    const id = experimentIds.find((e) => e.startsWith(stem));
    if (id !== undefined) issues.push({ index, message: `expected no other experiment id starting with "${stem}", received experiment ${JSON.stringify(id)}` });
    const i = stems.findIndex((other, k) => k < index && (other.startsWith(stem) || stem.startsWith(other)));
    if (i !== -1) issues.push({ index, message: `expected ids that no other sweep can give, received "${stem}…", which overlaps ${name(i)} ("${stems[i]}…")` });
  });
  return issues;
}
