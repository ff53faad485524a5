import { isDomainError } from '@aob/errors';
import { validateCatalog } from '../catalog/catalog-loader';
import { openAiFieldsOf } from '../openai/openai-errors';
import { Router } from './router';

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
