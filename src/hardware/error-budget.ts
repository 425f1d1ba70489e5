/**
 * The bus error policy, the same for every kind of bus: a failed read is tolerated (the
 * motor's last values stand) until reads have failed for longer than the budget; then the
 * bus is faulted, and stays so until reset().
 */
export class ErrorBudget {
  private failingSinceMs = -1;

  constructor(private readonly budgetMs: number) {}

  /** Records a read; returns how long reads have been failing past the budget (ms), or -1 while within it. */
  record(ok: boolean, nowMs: number): number {
    if (ok) {
      this.failingSinceMs = -1;
      return -1;
    }
    if (this.failingSinceMs < 0) {
      this.failingSinceMs = nowMs;
      return -1;
    }
    const failing = nowMs - this.failingSinceMs;
    return failing > this.budgetMs ? failing : -1;
  }

  reset(): void {
    this.failingSinceMs = -1;
  }
}
