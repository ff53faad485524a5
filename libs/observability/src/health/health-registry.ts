import { Injectable } from '@nestjs/common';

export type ReadinessCheck = () => Promise<void>;

export interface ReadinessReport {
  ready: boolean;
  checks: Record<string, { status: 'up' | 'down'; error?: string }>;
  down: string[];
}

/** Each dependency an app needs registers a check here; `/readyz` runs them all. */
@Injectable()
export class HealthRegistry {
  private readonly checks = new Map<string, ReadinessCheck>();
  /** Per-check time limit, so /readyz never hangs on a dead dependency. @default 2000 */
  timeoutMs = 2_000;

  register(name: string, check: ReadinessCheck): void {
    this.checks.set(name, check);
  }

  async report(): Promise<ReadinessReport> {
    type Entry = readonly [string, ReadinessReport['checks'][string]];
    const entries = await Promise.all(
      [...this.checks].map(async ([name, check]): Promise<Entry> => {
        try {
          await withTimeout(check(), this.timeoutMs);
          return [name, { status: 'up' as const }] as const;
        } catch (err) {
          const error = err instanceof Error ? err.message : String(err);
          return [name, { status: 'down' as const, error }] as const;
        }
      }),
    );
    const checks: ReadinessReport['checks'] = Object.fromEntries(entries);
    const down = entries.filter(([, r]) => r.status === 'down').map(([n]) => n);
    return { ready: down.length === 0, checks, down };
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
