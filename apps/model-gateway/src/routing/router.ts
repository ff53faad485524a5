import { CircuitState } from 'cockatiel';
import {
  type Catalog,
  type Deployment,
  type RoutingStrategy,
  TIER_PREFIX,
  TIERS,
  type Tier,
  tierRef,
} from '../catalog/catalog.schema';
import { contextLengthExceeded, modelNotFound, noDeploymentFits } from '../openai/openai-errors';
import { maxOutputTokensOf } from '../providers/provider-registry';
import type { DeploymentHealth, DeploymentHealthRegistry } from '../resilience/deployment-health';

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

/** What a request asks of its deployment, beyond the model. */
export interface RouteRequirements {
  /** Prompt tokens, counted only when a context window or cost limit needs them. */
  promptTokens: () => number;
  /** The client's completion token cap. */
  maxTokens?: number;
  /** `x-aob-max-latency-ms`: skip deployments whose measured time to first token is above it. */
  maxLatencyMs?: number;
  /** `x-aob-max-cost-usd`: skip deployments whose worst-case cost (prompt + max tokens) is above it. */
  maxCostUsd?: number;
}

/** The deployments to try for one request, in order. */
export interface RoutePlan {
  requested: string;
  /** Never empty (plan() throws instead). */
  candidates: Deployment[];
}

type Exclusion = 'context' | 'cost' | 'latency' | 'unavailable';

/**
 * Resolves `model` to an ordered list of deployments. A deployment name serves itself; an alias
 * its group (an alias may name several deployments); `tier:<tier>` the tier's deployments. The
 * group is ranked by its strategy (`routing` in the catalog; cost by default), deployments that
 * are out of rotation (failed probes, open circuit), too small for the prompt, or outside the
 * request's latency and cost limits are left out, and the catalog's `fallbacks` of `model`
 * follow, each ranked by its own strategy.
 */
export class Router {
  private readonly byName = new Map<string, Deployment>();
  private readonly groups = new Map<string, Deployment[]>();
  private readonly loadedAt = Math.floor(Date.now() / 1000);

  constructor(
    private readonly catalog: Catalog,
    /** Live state for health and the latency and least-busy strategies. @default everything healthy and idle */
    private readonly health?: DeploymentHealthRegistry,
  ) {
    for (const d of catalog.deployments) {
      this.byName.set(d.name, d);
      for (const alias of d.aliases) this.groups.set(alias, [...(this.groups.get(alias) ?? []), d]);
      if (d.tier)
        this.groups.set(tierRef(d.tier), [...(this.groups.get(tierRef(d.tier)) ?? []), d]);
    }
  }

  /** @throws DomainError NotFound (OpenAI `model_not_found`) when nothing serves `model`. */
  resolve(model: string): RouteDecision {
    const [deployment] = this.candidates(model);
    if (!deployment) throw modelNotFound(model);
    return { requested: model, deployment };
  }

  /** Deployments of `model` alone (no fallbacks, no filters), best first. Empty when nothing serves it. */
  candidates(model: string): Deployment[] {
    return this.rank(model, this.members(model));
  }

  /**
   * The deployments to try for a request, best first, fallbacks after.
   * @throws DomainError NotFound for an unknown model; InvalidRequest `context_length_exceeded`
   *   or `max_cost_exceeded` when no deployment can take the request; Unavailable when every
   *   deployment that could is out of rotation or too slow
   */
  plan(model: string, req: RouteRequirements): RoutePlan {
    const own = this.members(model);
    if (own.length === 0) throw modelNotFound(model);
    const refs = [model, ...(this.catalog.fallbacks[model] ?? [])];
    const seen = new Set<string>();
    const candidates: Deployment[] = [];
    const excluded = new Map<Exclusion, Deployment[]>();
    let promptTokens: number | undefined;
    const prompt = () => (promptTokens ??= req.promptTokens());
    for (const ref of refs) {
      const fitting: Deployment[] = [];
      for (const d of this.members(ref)) {
        if (seen.has(d.name)) continue;
        seen.add(d.name);
        const why = this.exclusion(d, req, prompt);
        if (why) excluded.set(why, [...(excluded.get(why) ?? []), d]);
        else fitting.push(d);
      }
      candidates.push(...this.rank(ref, fitting));
    }
    if (candidates.length > 0) return { requested: model, candidates };
    throw this.nothingFits(model, excluded, req, prompt);
  }

  /** Every name a client may send: deployment names, aliases, then served tiers. */
  models(): ModelEntry[] {
    const created = this.loadedAt;
    const entries: ModelEntry[] = [];
    for (const d of this.catalog.deployments)
      entries.push({ id: d.name, ownedBy: d.provider, created });
    const aliases = new Set(this.catalog.deployments.flatMap((d) => d.aliases));
    for (const alias of aliases) entries.push({ id: alias, ownedBy: 'aob', created });
    for (const tier of TIERS) {
      if (this.groups.has(tierRef(tier)))
        entries.push({ id: tierRef(tier), ownedBy: 'aob', created });
    }
    return entries;
  }

  private members(ref: string): Deployment[] {
    const named = this.byName.get(ref);
    if (named) return [named];
    if (ref.startsWith(TIER_PREFIX) && !isTier(ref.slice(TIER_PREFIX.length))) return [];
    return this.groups.get(ref) ?? [];
  }

  private exclusion(
    d: Deployment,
    req: RouteRequirements,
    prompt: () => number,
  ): Exclusion | undefined {
    const health = this.health?.of(d);
    if (health && !health.routable) return 'unavailable';
    if (d.contextWindow !== undefined && prompt() + (req.maxTokens ?? 0) > d.contextWindow)
      return 'context';
    if (
      req.maxCostUsd !== undefined &&
      worstCaseCost(d, prompt(), req.maxTokens) > req.maxCostUsd
    ) {
      return 'cost';
    }
    const ttft = health?.ttftMs;
    if (req.maxLatencyMs !== undefined && ttft !== undefined && ttft > req.maxLatencyMs)
      return 'latency';
    return undefined;
  }

  /** Ranks a group by its strategy. Half-open deployments go last: one test call is enough. */
  private rank(ref: string, group: Deployment[]): Deployment[] {
    const strategy: RoutingStrategy = this.catalog.routing[ref]?.strategy ?? 'cost';
    const h = (d: Deployment): DeploymentHealth | undefined => this.health?.of(d);
    const settled = (d: Deployment) => (h(d)?.circuit === CircuitState.HalfOpen ? 1 : 0);
    const key = (d: Deployment): number => {
      switch (strategy) {
        case 'latency':
          // unmeasured first, so every deployment gets measured
          return h(d)?.ttftMs ?? -1;
        case 'least-busy':
          return h(d)?.load ?? 0;
        case 'cost':
          return blendedPrice(d);
      }
    };
    // Array.prototype.sort is stable: catalog order breaks ties, then price
    return [...group].sort(
      (a, b) => settled(a) - settled(b) || key(a) - key(b) || blendedPrice(a) - blendedPrice(b),
    );
  }

  private nothingFits(
    model: string,
    excluded: Map<Exclusion, Deployment[]>,
    req: RouteRequirements,
    prompt: () => number,
  ) {
    // a request that could never fit is the client's to fix (400); the rest may pass (503)
    if (!excluded.has('unavailable') && !excluded.has('latency')) {
      const context = excluded.get('context');
      if (context && !excluded.has('cost')) {
        const largest = Math.max(...context.map((d) => d.contextWindow ?? 0));
        return contextLengthExceeded(model, largest, prompt(), req.maxTokens);
      }
      return noDeploymentFits(
        model,
        `no deployment of "${model}" fits x-aob-max-cost-usd=${req.maxCostUsd ?? ''}${context ? ' and the context window' : ''}`,
        400,
      );
    }
    const reasons = [...excluded.entries()]
      .map(([why, ds]) => `${ds.map((d) => d.name).join(', ')}: ${EXCLUSION_TEXT[why]}`)
      .join('; ');
    return noDeploymentFits(
      model,
      `no deployment of "${model}" can take the request now (${reasons})`,
      503,
    );
  }
}

const EXCLUSION_TEXT: Record<Exclusion, string> = {
  unavailable: 'out of rotation (failed health probes or open circuit)',
  latency: 'measured time to first token above x-aob-max-latency-ms',
  cost: 'estimated cost above x-aob-max-cost-usd',
  context: 'context window too small',
};

const isTier = (s: string): s is Tier => (TIERS as readonly string[]).includes(s);

/** One number to compare prices by: input and output per million tokens, weighted equally. */
const blendedPrice = (d: Deployment) => d.inputCostPer1M + d.outputCostPer1M;

/** Cost if the answer runs to max_tokens (or the deployment's maxOutputTokens when unset). */
export function worstCaseCost(
  d: Deployment,
  promptTokens: number,
  maxTokens: number | undefined,
): number {
  const output = maxTokens ?? maxOutputTokensOf(d);
  return (promptTokens * d.inputCostPer1M + output * d.outputCostPer1M) / 1_000_000;
}
