/**
 * Duration strings parsed to milliseconds: the one duration parser of the project. Accepts what
 * Temporal's TypeScript SDK accepts (its `ms`-style strings: '90s', '2h', '1.5 days', '500ms',
 * '.5h', '2y', and a bare number of milliseconds, '1500'), and compound forms as Go and the
 * `temporal` CLI write them and as `formatDuration` prints them ('1h30m', '2d4h', '1m 30s').
 * Pure, so the workflow sandbox, the client and the CLI all agree on what a duration means.
 */

const UNIT_MS: Record<string, number> = {
  ms: 1, msec: 1, msecs: 1, millisecond: 1, milliseconds: 1,
  s: 1000, sec: 1000, secs: 1000, second: 1000, seconds: 1000,
  m: 60_000, min: 60_000, mins: 60_000, minute: 60_000, minutes: 60_000,
  h: 3_600_000, hr: 3_600_000, hrs: 3_600_000, hour: 3_600_000, hours: 3_600_000,
  d: 86_400_000, day: 86_400_000, days: 86_400_000,
  w: 604_800_000, week: 604_800_000, weeks: 604_800_000,
  // As in `ms`: a year is 365.25 days.
  y: 31_557_600_000, yr: 31_557_600_000, yrs: 31_557_600_000, year: 31_557_600_000, years: 31_557_600_000,
};

/** A bare number: milliseconds, as in `ms`. */
const BARE = /^(\d+(?:\.\d+)?|\.\d+)$/;
/** One or more `<number><unit>` terms, optionally separated by spaces. */
const TERM = /(\d+(?:\.\d+)?|\.\d+)\s*([a-zA-Z]+)\s*/y;

/** Milliseconds of a duration string, or undefined when it is not a positive one. */
export function parseDuration(value: string): number | undefined {
  const text = value.trim();
  if (text === '') return undefined;
  let ms = 0;
  if (BARE.test(text)) ms = Number(text);
  else {
    TERM.lastIndex = 0;
    while (TERM.lastIndex < text.length) {
      const match = TERM.exec(text);
      if (!match) return undefined;
      const unit = UNIT_MS[match[2].toLowerCase()];
      if (unit === undefined) return undefined;
      ms += Number(match[1]) * unit;
    }
  }
  return Number.isFinite(ms) && ms > 0 && Math.round(ms) > 0 ? Math.round(ms) : undefined;
}

/** Like parseDuration, but throws an error naming `field` for anything that is not a positive duration. */
export function requireDuration(field: string, value: unknown): number {
  const ms = typeof value === 'string' ? parseDuration(value) : undefined;
  if (ms === undefined) {
    throw new Error(`${field}: expected a duration such as '90s', '15m', '2h' or '1h30m', received ${JSON.stringify(value)}`);
  }
  return ms;
}

/** A compact human form of a millisecond count, e.g. 5400000 → '1h30m'; parseDuration reads it back. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  const parts: string[] = [];
  let rest = Math.round(ms / 1000);
  for (const [unit, size] of [['d', 86400], ['h', 3600], ['m', 60], ['s', 1]] as const) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
  }
  return parts.join('');
}
