import type { Catalog, Deployment } from '../catalog/catalog.schema';
import { CatalogError } from '../catalog/catalog-loader';
import { AnthropicProvider } from './anthropic-provider';
import { LocalProvider } from './local-provider';
import { OpenAiProvider } from './openai-provider';
import type { Provider } from './provider';
import type { UpstreamHttpClient } from './upstream-http-client';

/** Completion tokens assumed when neither the client nor the catalog says (see `maxOutputTokens`). */
export const DEFAULT_MAX_OUTPUT_TOKENS = 4_096;

/** The catalog's `maxOutputTokens`, else the local model's natural length, else 4096. */
export function maxOutputTokensOf(d: Deployment): number {
  return (
    d.maxOutputTokens ??
    (d.provider === 'local' ? d.simulate.maxOutputTokens : DEFAULT_MAX_OUTPUT_TOKENS)
  );
}

/**
 * One provider instance per catalog deployment, built at start-up. Upstream keys are read once
 * from the environment variables the catalog names (`apiKeyEnv`) and never logged.
 */
export class ProviderRegistry {
  private readonly providers = new Map<string, Provider>();

  /** @throws CatalogError when a deployment's `apiKeyEnv` names an unset variable */
  constructor(catalog: Catalog, http: UpstreamHttpClient, env: NodeJS.ProcessEnv = process.env) {
    const missing: string[] = [];
    for (const deployment of catalog.deployments) {
      let apiKey: string | undefined;
      if (deployment.apiKeyEnv !== undefined) {
        apiKey = env[deployment.apiKeyEnv];
        if (!apiKey) missing.push(`${deployment.name}: ${deployment.apiKeyEnv}`);
      }
      this.providers.set(deployment.name, createProvider(deployment, http, apiKey));
    }
    if (missing.length > 0) {
      throw new CatalogError(
        `upstream API keys missing from the environment (deployment: variable): ${missing.join(', ')}`,
        missing.map((m) => ({ path: m, message: 'environment variable is not set' })),
      );
    }
  }

  for(deployment: Deployment): Provider {
    const provider = this.providers.get(deployment.name);
    // the registry and the router are built from the same catalog
    if (!provider) throw new Error(`no provider for deployment ${deployment.name}`);
    return provider;
  }
}

function createProvider(
  d: Deployment,
  http: UpstreamHttpClient,
  apiKey: string | undefined,
): Provider {
  switch (d.provider) {
    case 'local':
      return new LocalProvider(d);
    case 'openai':
      return new OpenAiProvider(d, http, apiKey);
    case 'anthropic':
      return new AnthropicProvider(d, http, apiKey, maxOutputTokensOf(d));
  }
}
