/** At most `slots` holders at once; the rest wait in order. */
export class Semaphore {
  private readonly waiters: (() => void)[] = [];
  constructor(private slots: number) {}

  async use<T>(fn: () => Promise<T>): Promise<T> {
    if (this.slots > 0) this.slots--;
    else await new Promise<void>((resolve) => this.waiters.push(resolve));
    try {
      return await fn();
    } finally {
      const next = this.waiters.shift();
      if (next) next();
      else this.slots++;
    }
  }
}
