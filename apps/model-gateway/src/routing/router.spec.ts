import { isDomainError } from '@aob/errors';
import { validateCatalog } from '../catalog/catalog-loader';
import { openAiFieldsOf } from '../openai/openai-errors';
import type { Deployment } from '../catalog/catalog.schema';
import { ModelGatewayMetrics } from '../metrics/model-gateway.metrics';
import { DeploymentHealthRegistry } from '../resilience/deployment-health';
import { Router, type RouteRequirements } from './router';

const catalog = validateCatalog({
  deployments: [
    {
      name: 'pricey-fast',
      provider: 'local',
      model: 'a',
      tier: 'fast',
      inputCostPer1M: 1,
      outputCostPer1M: 4,
    },
    {
      name: 'cheap-fast',
      provider: 'local',
      model: 'b',
      tier: 'fast',
      aliases: ['gpt-4o-mini'],
      inputCostPer1M: 0.1,
      outputCostPer1M: 0.4,
    },
    {
      name: 'also-cheap-fast',
      provider: 'local',
      model: 'c',
      tier: 'fast',
      inputCostPer1M: 0.2,
      outputCostPer1M: 0.3,
    },
    {
      name: 'balanced',
      provider: 'openai',
      model: 'gpt-4o',
      tier: 'balanced',
      aliases: ['gpt-4o'],
      inputCostPer1M: 2.5,
      outputCostPer1M: 10,
    },
    { name: 'untiered', provider: 'local', model: 'd', inputCostPer1M: 0, outputCostPer1M: 0 },
  ],
});
const router = new Router(catalog);

function notFound(model: string) {
  try {
    router.resolve(model);
  } catch (err) {
    if (!isDomainError(err)) throw err;
    return { code: err.code, message: err.message, openai: openAiFieldsOf(err.details) };
  }
  throw new Error(`${model} resolved`);
}

describe('Router', () => {
  it('resolves deployment names and aliases to that deployment', () => {
    expect(router.resolve('pricey-fast').deployment.name).toBe('pricey-fast');
    expect(router.resolve('gpt-4o-mini')).toEqual({
      requested: 'gpt-4o-mini',
      deployment: expect.objectContaining({ name: 'cheap-fast' }),
    });
    expect(router.resolve('gpt-4o').deployment.provider).toBe('openai');
  });

  it('picks the cheapest deployment of a tier, keeping catalog order between equal prices', () => {
    // 0.1 + 0.4 = 0.5 = 0.2 + 0.3: the earlier one wins
    expect(router.resolve('tier:fast')).toEqual({
      requested: 'tier:fast',
      deployment: expect.objectContaining({ name: 'cheap-fast' }),
    });
    expect(router.candidates('tier:fast').map((d) => d.name)).toEqual([
      'cheap-fast',
      'also-cheap-fast',
      'pricey-fast',
    ]);
    expect(router.resolve('tier:balanced').deployment.name).toBe('balanced');
  });

  it("answers unknown models, unserved tiers and bad tier names with OpenAI's model_not_found", () => {
    for (const model of ['gpt-5', 'tier:quality', 'tier:turbo', 'tier:', 'Cheap-Fast']) {
      expect(notFound(model)).toEqual({
        code: 'NotFound',
        message: `The model \`${model}\` does not exist or you do not have access to it.`,
        openai: { param: 'model', code: 'model_not_found' },
      });
    }
  });

  it('lists every name a client may send', () => {
    const models = router.models();
    expect(models.map((m) => [m.id, m.ownedBy])).toEqual([
      ['pricey-fast', 'local'],
      ['cheap-fast', 'local'],
      ['also-cheap-fast', 'local'],
      ['balanced', 'openai'],
      ['untiered', 'local'],
      ['gpt-4o-mini', 'aob'],
      ['gpt-4o', 'aob'],
      ['tier:fast', 'aob'],
      ['tier:balanced', 'aob'],
    ]);
    expect(new Set(models.map((m) => m.created)).size).toBe(1);
    for (const m of models) expect(() => router.resolve(m.id)).not.toThrow();
  });
});

describe('Router strategies and plans', () => {
  const group = validateCatalog({
    deployments: [
      {
        name: 'a',
        provider: 'local',
        model: 'a',
        aliases: ['grp'],
        tier: 'fast',
        inputCostPer1M: 3,
        outputCostPer1M: 3,
        maxConcurrency: 4,
      },
      {
        name: 'b',
        provider: 'local',
        model: 'b',
        aliases: ['grp'],
        tier: 'fast',
        inputCostPer1M: 1,
        outputCostPer1M: 1,
        maxConcurrency: 2,
        contextWindow: 100,
      },
      {
        name: 'c',
        provider: 'local',
        model: 'c',
        tier: 'balanced',
        inputCostPer1M: 2,
        outputCostPer1M: 2,
      },
    ],
    fallbacks: { grp: ['tier:balanced'] },
    routing: { grp: { strategy: 'least-busy' }, 'tier:fast': { strategy: 'latency' } },
  });
  const names = (ds: { name: string }[]) => ds.map((d) => d.name);
  const plan = (r: Router, model: string, extra: Partial<RouteRequirements> = {}) =>
    names(r.plan(model, { promptTokens: () => 10, ...extra }).candidates);

  it('ranks by cost, latency (unmeasured first) and least busy, then walks the fallbacks', async () => {
    const health = new DeploymentHealthRegistry(group, new ModelGatewayMetrics());
    const r = new Router(group, health);
    const [a, b] = group.deployments as [Deployment, Deployment];
    expect(plan(r, 'grp')).toEqual(['b', 'a', 'c']); // both idle: the cheaper first
    const release = await health.of(b).acquire();
    expect(plan(r, 'grp')).toEqual(['a', 'b', 'c']); // b: 1/2 busy, a: 0/4
    release();
    health.of(b).recordLatency(80, 'stream');
    expect(plan(r, 'tier:fast')).toEqual(['a', 'b']); // a unmeasured goes first
    health.of(a).recordLatency(20, 'stream');
    expect(plan(r, 'tier:fast')).toEqual(['a', 'b']);
    health.of(a).recordLatency(500, 'stream');
    expect(plan(r, 'tier:fast')).toEqual(['b', 'a']);
    expect(plan(r, 'tier:fast', { maxLatencyMs: 100 })).toEqual(['b']);
  });

  it('leaves out deployments out of rotation, too small, or too expensive', () => {
    const health = new DeploymentHealthRegistry(group, new ModelGatewayMetrics());
    const r = new Router(group, health);
    expect(plan(r, 'grp', { promptTokens: () => 95, maxTokens: 10 })).toEqual(['a', 'c']);
    // worst case 10 prompt + 50 completion tokens: a 0.00018 $, b 0.00006 $, c 0.00012 $
    expect(plan(r, 'grp', { maxTokens: 50, maxCostUsd: 0.0001 })).toEqual(['b']);
    health.of(group.deployments[1] as Deployment).recordProbe(false);
    health.of(group.deployments[1] as Deployment).recordProbe(false);
    expect(plan(r, 'grp')).toEqual(['a', 'c']);
    expect(() => r.plan('tier:turbo', { promptTokens: () => 1 })).toThrow(/does not exist/);
    expect(() => new Router(group).plan('b', { promptTokens: () => 200 })).toThrow(
      /maximum context length is 100 tokens/,
    );
  });
});
