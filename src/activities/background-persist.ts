/**
 * The one background persist of a training attempt (`ctx.checkpointInBackground`): at most one is
 * in flight; its failure is held until the trainer's next call (`step`, `checkpoint`) or the end
 * of the attempt throws it, as the same error a synchronous checkpoint would have thrown.
 */
export class BackgroundPersist {
  private inFlight: Promise<void> | undefined;
  private failure: { error: unknown } | undefined;

  /** Throws the failure of the last persist, once. */
  throwFailure(): void {
    const failure = this.failure;
    this.failure = undefined;
    if (failure) throw failure.error;
  }

  /** Waits for the persist in flight, if any, then throws its failure. */
  async settled(): Promise<void> {
    await this.inFlight;
    this.throwFailure();
  }

  /** Waits for the persist in flight without throwing (an attempt already failing). */
  async landed(): Promise<void> {
    await this.inFlight;
  }

  /** Whether a persist is in flight. */
  get busy(): boolean {
    return this.inFlight !== undefined;
  }

  /**
   * Starts `persist` as the one in flight; `onDurable` runs when it lands. The caller checks `busy`
   * is false in the same synchronous run (no await in between: another call could start one).
   */
  start<T>(persist: Promise<T>, onDurable: (value: T) => void): void {
    if (this.inFlight) throw new Error('BackgroundPersist.start: a persist is already in flight (check busy first)');
    const current: Promise<void> = persist.then(onDurable, (error: unknown) => {
      this.failure ??= { error };
    });
    this.inFlight = current;
    void current.then(() => {
      if (this.inFlight === current) this.inFlight = undefined;
    });
  }
}
