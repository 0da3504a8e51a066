/** What a slot's owner wants to know: holders waiting, holders running. */
export interface SlotMeter {
  queued(delta: number): void;
  running(delta: number): void;
}

/** At most `slots` holders at once; the rest wait in order. A meter, when given, sees the queue and the work. */
export class Semaphore {
  private readonly waiters: (() => void)[] = [];
  constructor(
    private slots: number,
    private readonly meter: SlotMeter | null = null,
  ) {}

  async use<T>(fn: () => Promise<T>): Promise<T> {
    if (this.slots > 0) this.slots--;
    else {
      this.meter?.queued(1);
      await new Promise<void>((resolve) => this.waiters.push(resolve));
      this.meter?.queued(-1);
    }
    this.meter?.running(1);
    try {
      return await fn();
    } finally {
      this.meter?.running(-1);
      const next = this.waiters.shift();
      if (next) next();
      else this.slots++;
    }
  }
}
