import type { Catalog, Deployment } from '../catalog/catalog.schema';
import { providerNotAvailable } from '../openai/openai-errors';
import { LocalProvider } from './local-provider';
import type { Provider } from './provider';

/**
 * One provider instance per catalog deployment, built at start-up. Deployments of providers this
 * version cannot call (openai, anthropic) are kept in the catalog and answer 503 when used.
 */
export class ProviderRegistry {
  private readonly providers = new Map<string, Provider>();

  constructor(catalog: Catalog) {
    for (const deployment of catalog.deployments) {
      const provider = createProvider(deployment);
      if (provider) this.providers.set(deployment.name, provider);
    }
  }

  /** @throws DomainError Unavailable (503) when the deployment's provider is not implemented yet */
  for(deployment: Deployment): Provider {
    const provider = this.providers.get(deployment.name);
    if (!provider) throw providerNotAvailable(deployment.name, deployment.provider);
    return provider;
  }
}

function createProvider(deployment: Deployment): Provider | undefined {
  switch (deployment.provider) {
    case 'local':
      return new LocalProvider(deployment);
    case 'openai':
    case 'anthropic':
      return undefined;
  }
}
