/**
 * Random search spaces, pure: the distributions a `random` sweep draws from and the seeded
 * draws themselves. Draw k of a sweep comes from a generator seeded by (seed, k), so a re-run of
 * the same file draws the same trials, and adding samples keeps the earlier ones.
 */

/** One parameter's distribution in a `random` sweep. `randint` includes both bounds. */
export type Distribution =
  | { readonly uniform: readonly [number, number] }
  | { readonly loguniform: readonly [number, number] }
  | { readonly randint: readonly [number, number] }
  | { readonly choice: readonly (number | string | boolean)[] };

export type DrawnValue = number | string | boolean;

/** A 32-bit hash of a string (FNV-1a), to turn a sweep's id prefix into a default seed. */
export function hashSeed(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** A small seeded generator (SplitMix32): uniform doubles in [0, 1). */
export function seededRandom(seed: number, stream: number): () => number {
  let state = (Math.imul(seed | 0, 0x9e3779b1) ^ Math.imul(stream + 1, 0x85ebca77)) | 0;
  return () => {
    state = (state + 0x9e3779b9) | 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
    z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
    return ((z ^ (z >>> 15)) >>> 0) / 4294967296;
  };
}

/** One value of `dist` from `next` (a generator of uniform doubles in [0, 1)). */
export function draw(dist: Distribution, next: () => number): DrawnValue {
  if ('uniform' in dist) {
    const [lo, hi] = dist.uniform;
    return lo + (hi - lo) * next();
  }
  if ('loguniform' in dist) {
    const [lo, hi] = dist.loguniform;
    return Math.exp(Math.log(lo) + (Math.log(hi) - Math.log(lo)) * next());
  }
  if ('randint' in dist) {
    const [lo, hi] = dist.randint;
    return lo + Math.floor((hi - lo + 1) * next());
  }
  return dist.choice[Math.floor(dist.choice.length * next())];
}

/** Draw number `index` of a space: one value per key, in the keys' order. */
export function drawPoint(space: Readonly<Record<string, Distribution>>, seed: number, index: number): Record<string, DrawnValue> {
  const next = seededRandom(seed, index);
  const point: Record<string, DrawnValue> = {};
  for (const [key, dist] of Object.entries(space)) point[key] = draw(dist, next);
  return point;
}

/** A value as it appears in an experiment id: numbers to 3 significant digits. */
export function idValue(value: DrawnValue): string {
  if (typeof value !== 'number' || Number.isInteger(value)) return String(value);
  return Number(value.toPrecision(3)).toString();
}
