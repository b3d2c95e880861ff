/** The profiling window of `estimatedDuration: "auto"` training runs (training.ts uses it). */
import type { ProfileMeasurement } from '../shared/types';

/**
 * The profiling window of an `estimatedDuration: "auto"` run: counts steps, asks to stop once the
 * window (steps or milliseconds since the first step) is over, and measures the step rate over
 * the window's second half, so start-up, resume reading and warm-up are not in it.
 */
export class Profiler {
  private steps = 0;
  private first = 0;
  private last = 0;
  private readonly started = performance.now();
  /** Step times, for the second half's rate; capped (a long duration window keeps its first ones). */
  private readonly times: number[] = [];

  constructor(
    private readonly window: { readonly steps?: number; readonly durationMs?: number },
    private readonly stop: () => void,
  ) {}

  step(): void {
    const now = performance.now();
    this.steps++;
    if (this.steps === 1) this.first = now;
    this.last = now;
    if (this.times.length < 100_000) this.times.push(now);
    const { steps, durationMs } = this.window;
    if ((steps !== undefined && this.steps >= steps) || (durationMs !== undefined && now - this.first >= durationMs)) this.stop();
  }

  measurement(totalSteps: number | null, hardwareClass: string | null): ProfileMeasurement {
    const half = Math.floor(this.times.length / 2);
    const from = this.times[half] ?? this.first;
    const to = this.times[this.times.length - 1] ?? this.last;
    const n = this.times.length - 1 - half;
    const stepsPerSecond = n >= 1 && to > from ? (n * 1000) / (to - from) : 0;
    return { steps: this.steps, stepsPerSecond, totalSteps, hardwareClass, elapsedMs: Math.round(performance.now() - this.started) };
  }
}
