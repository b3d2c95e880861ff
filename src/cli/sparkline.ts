/**
 * Sparklines for the terminal's progress bars: a loss trail per experiment, made of the values
 * the live view polled (one per refresh, kept only when the loss changed), drawn with the eight
 * block characters, scaled between the trail's own minimum and maximum. Pure, no terminal I/O.
 */

const BLOCKS = '▁▂▃▄▅▆▇█';

/**
 * `values` as one block character each (the last `width` of them). Non-finite values are
 * skipped; a flat trail is drawn at mid-height, so it never reads as a collapse to zero.
 */
export function sparkline(values: readonly number[], width = 12): string {
  const shown = values.filter((v) => Number.isFinite(v)).slice(-width);
  if (shown.length === 0) return '';
  const min = Math.min(...shown);
  const span = Math.max(...shown) - min;
  return shown.map((v) => (span === 0 ? BLOCKS[3] : BLOCKS[Math.round(((v - min) / span) * (BLOCKS.length - 1))])).join('');
}

/** The recent losses of each experiment, bounded: `capacity` values per experiment. */
export class LossTrails {
  private readonly trails = new Map<string, number[]>();

  constructor(private readonly capacity = 12) {}

  /** Adds `loss` to the experiment's trail unless it repeats the last value (a refresh without a new step). */
  add(id: string, loss: number | null): void {
    if (loss === null || !Number.isFinite(loss)) return;
    const trail = this.trails.get(id) ?? [];
    if (trail.at(-1) === loss) return;
    trail.push(loss);
    if (trail.length > this.capacity) trail.splice(0, trail.length - this.capacity);
    this.trails.set(id, trail);
  }

  /** The experiment's sparkline, or '' until it has two values (one is not a trend). */
  line(id: string): string {
    const trail = this.trails.get(id) ?? [];
    return trail.length < 2 ? '' : sparkline(trail, this.capacity);
  }

  delete(id: string): void {
    this.trails.delete(id);
  }
}
