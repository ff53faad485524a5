import { z } from 'zod';
import type { GatewayConfig } from '../config';
import { AgentRegistry } from './agent-registry';
import type { AgentInfo, AgentRepository } from './agent.repository';

/** In-memory stand-in for executor.agents that counts reads. */
class FakeAgentRepository implements Pick<AgentRepository, 'listAll'> {
  reads = 0;
  constructor(public agents: AgentInfo[]) {}
  async listAll(): Promise<AgentInfo[]> {
    this.reads++;
    return this.agents;
  }
}

const echoSchema = z.toJSONSchema(
  z.object({
    message: z.json().optional(),
    delayMs: z.number().int().nonnegative().optional(),
    fail: z.enum(['transient', 'permanent']).optional(),
  }),
  { io: 'input' },
) as Record<string, unknown>;

const agent = (
  name: string,
  inputSchema: Record<string, unknown> = echoSchema,
  version = '1',
): AgentInfo => ({
  name,
  description: `${name} agent`,
  version,
  inputSchema,
  updatedAt: new Date('2025-11-22T00:00:00Z'),
});

const config = { AGENTS_CACHE_MS: 60_000 } as GatewayConfig;

describe('AgentRegistry', () => {
  it('validates input against the JSON Schema the executor registered', async () => {
    const registry = new AgentRegistry(
      new FakeAgentRepository([agent('echo')]) as unknown as AgentRepository,
      config,
    );
    const echo = await registry.find('echo');
    expect(echo).toBeDefined();
    expect(registry.validateInput(echo!, { message: { any: ['json'] }, delayMs: 5 })).toEqual([]);
    const errors = registry.validateInput(echo!, { delayMs: -1, fail: 'sometimes' });
    expect(errors.map((e) => e.path).sort()).toEqual(['input.delayMs', 'input.fail']);
    expect(registry.validateInput(echo!, 'not an object')).toEqual([
      { path: 'input', message: 'must be object' },
    ]);
  });

  it('caches the list and re-reads on an unknown name at most once a second', async () => {
    jest.useFakeTimers({
      now: new Date('2025-11-22T00:00:00Z'),
      doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'],
    });
    const repo = new FakeAgentRepository([agent('echo')]);
    const registry = new AgentRegistry(repo as unknown as AgentRepository, config);
    await registry.list();
    await registry.find('echo');
    expect(repo.reads).toBe(1);
    repo.agents = [agent('echo'), agent('chat')];
    // a miss right after a read does not reach the database again
    expect(await registry.find('chat')).toBeUndefined();
    expect(repo.reads).toBe(1);
    jest.setSystemTime(Date.now() + 1_001);
    expect(await registry.find('chat')).toMatchObject({ name: 'chat' });
    expect(repo.reads).toBe(2);
    expect(await registry.find('nope')).toBeUndefined();
    expect(repo.reads).toBe(2);
  });

  afterEach(() => jest.useRealTimers());

  it('accepts input when the registered schema does not compile (the executor validates again)', async () => {
    const broken = agent('broken', { type: 'object', properties: { a: { $ref: '#/nowhere' } } });
    const registry = new AgentRegistry(
      new FakeAgentRepository([broken]) as unknown as AgentRepository,
      config,
    );
    expect(registry.validateInput((await registry.find('broken'))!, { a: 1 })).toEqual([]);
  });

  it('recompiles when the agent registers a new version', async () => {
    const repo = new FakeAgentRepository([agent('strict', { type: 'object', required: ['a'] })]);
    const registry = new AgentRegistry(
      repo as unknown as AgentRepository,
      { AGENTS_CACHE_MS: 0 } as GatewayConfig,
    );
    expect(registry.validateInput((await registry.find('strict'))!, {})).toHaveLength(1);
    repo.agents = [{ ...agent('strict', { type: 'object' }, '2'), updatedAt: new Date() }];
    expect(registry.validateInput((await registry.find('strict'))!, {})).toEqual([]);
  });
});
