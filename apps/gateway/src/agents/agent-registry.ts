import { Inject, Injectable, Logger } from '@nestjs/common';
import Ajv2020, { type ErrorObject, type ValidateFunction } from 'ajv/dist/2020';
import { GATEWAY_CONFIG, type GatewayConfig } from '../config';
import type { FieldError } from '../common/validation';
import { AgentRepository, type AgentInfo } from './agent.repository';

/** A miss refreshes the cache at most this often, so unknown names cannot hammer Postgres. */
const MISS_REFRESH_MS = 1_000;

/**
 * The registered agents (executor.agents), cached for AGENTS_CACHE_MS, and their input schemas
 * compiled with Ajv (JSON Schema 2020-12) once per schema version.
 */
@Injectable()
export class AgentRegistry {
  private readonly log = new Logger(AgentRegistry.name);
  private cache: { at: number; agents: Map<string, AgentInfo> } | undefined;
  private loading: Promise<Map<string, AgentInfo>> | undefined;
  private readonly validators = new Map<
    string,
    { schema: Record<string, unknown>; validate: ValidateFunction | null }
  >();
  private readonly ajv = new Ajv2020({
    allErrors: true,
    strict: false,
    // Executors may reuse `$id`s across agents and versions: never register compiled schemas by id.
    addUsedSchema: false,
    // Formats need ajv-formats; the executor validates the input again with its own schema.
    validateFormats: false,
    // Patterns come from JavaScript regexes (z.toJSONSchema); the `u` flag rejects some of them.
    unicodeRegExp: false,
  });

  constructor(
    private readonly repo: AgentRepository,
    @Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig,
  ) {}

  async list(): Promise<AgentInfo[]> {
    return [...(await this.load(this.config.AGENTS_CACHE_MS)).values()];
  }

  /** The agent, re-reading the registry once when the name is not cached (it may have just registered). */
  async find(name: string): Promise<AgentInfo | undefined> {
    const found = (await this.load(this.config.AGENTS_CACHE_MS)).get(name);
    if (found) return found;
    return (await this.load(MISS_REFRESH_MS)).get(name);
  }

  /** Errors of `input` against the agent's input schema; empty when valid. */
  validateInput(agent: AgentInfo, input: unknown): FieldError[] {
    const validate = this.validatorFor(agent);
    if (!validate || validate(input)) return [];
    return (validate.errors ?? []).map((e) => toFieldError(e));
  }

  private async load(maxAgeMs: number): Promise<Map<string, AgentInfo>> {
    if (this.cache && Date.now() - this.cache.at < maxAgeMs) return this.cache.agents;
    this.loading ??= this.repo
      .listAll()
      .then((list) => {
        const agents = new Map(list.map((a) => [a.name, a]));
        this.cache = { at: Date.now(), agents };
        return agents;
      })
      .finally(() => {
        this.loading = undefined;
      });
    return this.loading;
  }

  private validatorFor(agent: AgentInfo): ValidateFunction | null {
    const key = `${agent.name}\u0000${agent.version}\u0000${agent.updatedAt.getTime()}`;
    const cached = this.validators.get(key);
    if (cached !== undefined) return cached.validate;
    let validate: ValidateFunction | null;
    try {
      validate = this.ajv.compile(agent.inputSchema);
    } catch (err) {
      // A broken registration must not block submissions: the executor still validates.
      this.log.error(
        `input schema of agent ${agent.name} v${agent.version} does not compile: ${(err as Error).message}`,
      );
      validate = null;
    }
    // Forget the agent's previous version (Ajv caches compiled schemas by object).
    for (const [k, v] of this.validators) {
      if (k.startsWith(`${agent.name}\u0000`)) {
        this.ajv.removeSchema(v.schema);
        this.validators.delete(k);
      }
    }
    this.validators.set(key, { schema: agent.inputSchema, validate });
    return validate;
  }
}

function toFieldError(e: ErrorObject): FieldError {
  const segments = e.instancePath
    .split('/')
    .slice(1)
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
  const path = ['input', ...segments].join('.');
  const message =
    e.keyword === 'additionalProperties'
      ? `${e.message ?? 'invalid'}: ${String(e.params.additionalProperty)}`
      : (e.message ?? 'invalid');
  return { path, message };
}
