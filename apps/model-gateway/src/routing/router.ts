import {
  type Catalog,
  type Deployment,
  TIER_PREFIX,
  TIERS,
  type Tier,
  tierRef,
} from '../catalog/catalog.schema';
import { modelNotFound } from '../openai/openai-errors';

export interface RouteDecision {
  /** What the client asked for: a deployment name, an alias or `tier:<tier>`. */
  requested: string;
  /** The deployment that serves it. */
  deployment: Deployment;
}

export interface ModelEntry {
  /** A name clients may send as `model`. */
  id: string;
  /** `aob` for aliases and tiers, the provider for deployment names. */
  ownedBy: string;
  /** Unix seconds: when this catalog was loaded. */
  created: number;
}

/**
 * Resolves the `model` of a request to a deployment. A deployment name or alias names exactly one;
 * `tier:<tier>` picks the tier's cheapest deployment. The routing version will rank candidates by
 * strategy, health and circuit state and walk the catalog's fallbacks: `candidates()` is the seam.
 */
export class Router {
  private readonly byName = new Map<string, Deployment>();
  private readonly byTier = new Map<Tier, Deployment[]>();
  private readonly loadedAt = Math.floor(Date.now() / 1000);

  constructor(private readonly catalog: Catalog) {
    for (const d of catalog.deployments) {
      this.byName.set(d.name, d);
      for (const alias of d.aliases) this.byName.set(alias, d);
      if (d.tier) this.byTier.set(d.tier, [...(this.byTier.get(d.tier) ?? []), d]);
    }
    // cheapest first; a stable sort keeps catalog order between equal prices
    for (const list of this.byTier.values()) list.sort((a, b) => blendedPrice(a) - blendedPrice(b));
  }

  /** @throws DomainError NotFound (OpenAI `model_not_found`) when nothing serves `model`. */
  resolve(model: string): RouteDecision {
    const [deployment] = this.candidates(model);
    if (!deployment) throw modelNotFound(model);
    return { requested: model, deployment };
  }

  /** Deployments able to serve `model`, best first. Empty when nothing does. */
  candidates(model: string): Deployment[] {
    const named = this.byName.get(model);
    if (named) return [named];
    if (model.startsWith(TIER_PREFIX)) {
      const tier = model.slice(TIER_PREFIX.length);
      if (isTier(tier)) return [...(this.byTier.get(tier) ?? [])];
    }
    return [];
  }

  /** Every name a client may send: deployment names, aliases, then served tiers. */
  models(): ModelEntry[] {
    const created = this.loadedAt;
    const entries: ModelEntry[] = [];
    for (const d of this.catalog.deployments)
      entries.push({ id: d.name, ownedBy: d.provider, created });
    for (const d of this.catalog.deployments) {
      for (const alias of d.aliases) entries.push({ id: alias, ownedBy: 'aob', created });
    }
    for (const tier of TIERS)
      if (this.byTier.has(tier)) entries.push({ id: tierRef(tier), ownedBy: 'aob', created });
    return entries;
  }
}

const isTier = (s: string): s is Tier => (TIERS as readonly string[]).includes(s);

/** One number to compare prices by: input and output per million tokens, weighted equally. */
const blendedPrice = (d: Deployment) => d.inputCostPer1M + d.outputCostPer1M;
