import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  CatalogError,
  DEFAULT_CATALOG_PATH,
  loadCatalog,
  parseCatalog,
  validateCatalog,
} from './catalog-loader';

const deployment = (over: Record<string, unknown> = {}) => ({
  name: 'local-fast',
  provider: 'local',
  model: 'sim-small',
  tier: 'fast',
  inputCostPer1M: 0.1,
  outputCostPer1M: 0.4,
  ...over,
});

function issuesOf(raw: unknown): string[] {
  try {
    validateCatalog(raw);
  } catch (err) {
    expect(err).toBeInstanceOf(CatalogError);
    return (err as CatalogError).issues.map((i) => `${i.path}: ${i.message}`);
  }
  throw new Error('expected the catalog to be rejected');
}

describe('catalog loader', () => {
  it('loads the packaged default catalog from the package folder, not the working directory', () => {
    const cwd = process.cwd();
    process.chdir(tmpdir());
    try {
      const catalog = loadCatalog(DEFAULT_CATALOG_PATH);
      expect(catalog.deployments.map((d) => [d.name, d.model, d.tier])).toEqual([
        ['local-fast', 'sim-small', 'fast'],
        ['local-balanced', 'sim-medium', 'balanced'],
        ['local-quality', 'sim-large', 'quality'],
      ]);
      expect(catalog.deployments[0]?.aliases).toEqual(['gpt-4o-mini']);
      expect(catalog.deployments[1]?.aliases).toEqual(['gpt-4o', 'gpt-4.1']);
    } finally {
      process.chdir(cwd);
    }
  });

  it('applies defaults, simulation knobs included', () => {
    const catalog = validateCatalog({ deployments: [deployment()] });
    expect(catalog.deployments[0]).toMatchObject({
      aliases: [],
      maxConcurrency: 64,
      timeoutMs: 30_000,
      simulate: { ttftMs: 30, tokensPerSecond: 400, maxOutputTokens: 256 },
    });
    expect(catalog.fallbacks).toEqual({});
    const partial = validateCatalog({ deployments: [deployment({ simulate: { ttftMs: 0 } })] });
    expect(partial.deployments[0]?.simulate).toEqual({
      ttftMs: 0,
      tokensPerSecond: 400,
      maxOutputTokens: 256,
    });
  });

  it('reads YAML and JSON files alike', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'aob-catalog-'));
    const json = path.join(dir, 'catalog.json');
    writeFileSync(json, JSON.stringify({ deployments: [deployment()] }));
    expect(loadCatalog(json).deployments[0]?.name).toBe('local-fast');
    const yaml = path.join(dir, 'catalog.yml');
    writeFileSync(
      yaml,
      'deployments:\n  - {name: a, provider: local, model: m, inputCostPer1M: 1, outputCostPer1M: 2}\n',
    );
    expect(loadCatalog(yaml).deployments[0]?.name).toBe('a');
  });

  it('accepts the contract providers that this version cannot call yet', () => {
    const catalog = validateCatalog({
      deployments: [
        deployment(),
        deployment({
          name: 'vllm',
          provider: 'openai',
          baseUrl: 'http://vllm:8000/v1',
          apiKeyEnv: 'VLLM_API_KEY',
          tier: 'quality',
        }),
        deployment({ name: 'claude', provider: 'anthropic', tier: 'quality' }),
      ],
    });
    expect(catalog.deployments.map((d) => d.provider)).toEqual(['local', 'openai', 'anthropic']);
  });

  it('names the bad field and the deployment it belongs to', () => {
    expect(
      issuesOf({ deployments: [deployment(), deployment({ name: 'b', tier: 'turbo' })] }),
    ).toEqual([expect.stringMatching(/^deployments\[1\] \(b\)\.tier: .*fast.*balanced.*quality/)]);
    expect(issuesOf({ deployments: [deployment({ provider: 'gemini' })] })).toEqual([
      expect.stringMatching(/^deployments\[0\] \(local-fast\)\.provider: /),
    ]);
    expect(issuesOf({ deployments: [deployment({ inputCostPer1m: 1 })] })).toEqual([
      expect.stringMatching(/^deployments\[0\] \(local-fast\): .*inputCostPer1m/),
    ]);
    expect(issuesOf({ deployments: [{ name: 'x', provider: 'local', model: 'm' }] })).toEqual([
      expect.stringMatching(/^deployments\[0\] \(x\)\.inputCostPer1M: /),
      expect.stringMatching(/^deployments\[0\] \(x\)\.outputCostPer1M: /),
    ]);
    expect(issuesOf({ deployments: [deployment({ simulate: { tokensPerSecond: 0 } })] })).toEqual([
      expect.stringMatching(/^deployments\[0\] \(local-fast\)\.simulate\.tokensPerSecond: /),
    ]);
    expect(issuesOf({ deployments: [] })).toEqual([
      'deployments: the catalog needs at least one deployment',
    ]);
    expect(issuesOf(null)).toHaveLength(1);
  });

  it('rejects duplicate names and aliases that collide with names; a shared alias is a group', () => {
    expect(issuesOf({ deployments: [deployment(), deployment()] })).toEqual([
      'deployments[1] (local-fast).name: duplicate deployment name "local-fast"',
    ]);
    expect(
      issuesOf({
        deployments: [
          deployment({ aliases: ['gpt-4o'] }),
          deployment({ name: 'b', aliases: ['gpt-4o', 'local-fast', 'tier:fast'] }),
        ],
      }),
    ).toEqual([
      'deployments[1] (b).aliases[1]: "local-fast" is the name of deployment "local-fast"',
      'deployments[1] (b).aliases[2]: "tier:fast": aliases may not start with "tier:"',
    ]);
    expect(() =>
      validateCatalog({
        deployments: [
          deployment({ aliases: ['gpt-4o'] }),
          deployment({ name: 'b', aliases: ['gpt-4o'] }),
        ],
        routing: { 'gpt-4o': { strategy: 'least-busy' }, 'tier:fast': { strategy: 'latency' } },
      }),
    ).not.toThrow();
    expect(
      issuesOf({ deployments: [deployment()], routing: { 'tier:quality': { strategy: 'cost' } } }),
    ).toEqual(['routing.tier:quality: "tier:quality" names no served tier or alias']);
    expect(issuesOf({ deployments: [deployment({ aliases: ['x', 'x', 'local-fast'] })] })).toEqual([
      'deployments[0] (local-fast).aliases[1]: duplicate alias "x"',
      'deployments[0] (local-fast).aliases[2]: "local-fast" is already the deployment\'s name',
    ]);
  });

  it('checks that fallbacks name something the catalog serves', () => {
    expect(() =>
      validateCatalog({ deployments: [deployment()], fallbacks: { 'local-fast': ['tier:fast'] } }),
    ).not.toThrow();
    expect(
      issuesOf({
        deployments: [deployment()],
        fallbacks: { 'tier:quality': ['tier:fast', 'nope'] },
      }),
    ).toEqual([
      'fallbacks.tier:quality: "tier:quality" names no deployment, alias or served tier',
      'fallbacks.tier:quality[1]: "nope" names no deployment, alias or served tier',
    ]);
  });

  it('says which file is broken and why', () => {
    expect(() => parseCatalog('deployments: [', { source: 'bad.yaml' })).toThrow(
      /model catalog bad\.yaml is not valid YAML/,
    );
    expect(() => parseCatalog('{"deployments": ', { source: 'bad.json', format: 'json' })).toThrow(
      /model catalog bad\.json is not valid JSON/,
    );
    expect(() => parseCatalog('deployments: []', { source: 'empty.yaml' })).toThrow(
      /invalid model catalog empty\.yaml:\n {2}- deployments: the catalog needs at least one deployment/,
    );
    expect(() => loadCatalog('/nonexistent/catalog.yaml')).toThrow(
      /cannot read model catalog \/nonexistent\/catalog\.yaml/,
    );
  });
});
