import { Logger, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { ProviderRegistry } from '../providers/provider-registry';
import type { DeploymentHealth, DeploymentHealthRegistry } from './deployment-health';

/**
 * Background health probes of remote deployments (vLLM's `/health`, or any server's models
 * list): a replica that stops answering is taken out of rotation before a user request hits it,
 * and put back on its first good probe. Probes also keep a pooled connection to each upstream warm.
 */
export class HealthProber implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(HealthProber.name);
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly stopping = new AbortController();

  constructor(
    private readonly health: DeploymentHealthRegistry,
    private readonly providers: ProviderRegistry,
  ) {}

  onApplicationBootstrap(): void {
    for (const h of this.health.all()) {
      const check = h.deployment.healthCheck;
      const provider = this.providers.for(h.deployment);
      const probe = provider.probe?.bind(provider);
      if (check === false || !probe) continue;
      let running = false;
      const tick = () => {
        if (running) return; // a slow probe is still out: do not pile up
        running = true;
        void this.probeOnce(h, probe).finally(() => {
          running = false;
        });
      };
      tick();
      const timer = setInterval(tick, check.intervalMs);
      timer.unref();
      this.timers.push(timer);
    }
  }

  onApplicationShutdown(): void {
    for (const t of this.timers) clearInterval(t);
    this.stopping.abort();
  }

  private async probeOnce(h: DeploymentHealth, probe: (signal: AbortSignal) => Promise<boolean>) {
    const wasUp = h.up;
    const alive = await probe(this.stopping.signal);
    if (this.stopping.signal.aborted) return;
    h.recordProbe(alive);
    if (wasUp && !h.up) {
      this.logger.warn({ deployment: h.name }, 'health probe failed: deployment out of rotation');
    } else if (!wasUp && h.up) {
      this.logger.log({ deployment: h.name }, 'health probe passed: deployment back in rotation');
    }
  }
}
