export { AppModule, APP_NAME, type ModelGatewayModuleOptions } from './app.module';
export { startModelGateway, type StartModelGatewayOptions } from './bootstrap';
export { modelGatewayEnvSchema, loadModelGatewayConfig, type ModelGatewayConfig } from './config';
export {
  catalogSchema,
  deploymentSchema,
  simulationSchema,
  routingGroupSchema,
  retrySchema,
  circuitBreakerSchema,
  healthCheckSchema,
  ROUTING_STRATEGIES,
  PROVIDER_KINDS,
  TIERS,
  TIER_PREFIX,
  tierRef,
  type Catalog,
  type Deployment,
  type ProviderKind,
  type RoutingGroup,
  type RoutingStrategy,
  type Simulation,
  type Tier,
} from './catalog/catalog.schema';
export {
  loadCatalog,
  parseCatalog,
  validateCatalog,
  CatalogError,
  DEFAULT_CATALOG_PATH,
  type CatalogIssue,
  type ParseCatalogOptions,
} from './catalog/catalog-loader';
export { costUsd } from './catalog/pricing';
export {
  Router,
  worstCaseCost,
  type RouteDecision,
  type ModelEntry,
  type RoutePlan,
  type RouteRequirements,
} from './routing/router';
export {
  UpstreamDispatcher,
  type Dispatched,
  type DispatchOptions,
  type UpstreamCall,
} from './routing/upstream-dispatcher';
export { DeploymentHealth, DeploymentHealthRegistry } from './resilience/deployment-health';
export { HealthProber } from './resilience/health-prober';
export { routeConstraintsFrom, type RouteConstraints } from './chat/route-constraints';
export type {
  Provider,
  ProviderRequest,
  ProviderChunk,
  ProviderCompletion,
  ProviderStream,
  FinishReason,
  TokenUsage,
  ToolCall,
} from './providers/provider';
export { LocalProvider } from './providers/local-provider';
export { OpenAiProvider, OPENAI_DEFAULT_BASE_URL } from './providers/openai-provider';
export {
  AnthropicProvider,
  ANTHROPIC_DEFAULT_BASE_URL,
  ANTHROPIC_VERSION,
} from './providers/anthropic-provider';
export {
  toAnthropicRequest,
  fromAnthropicMessage,
  AnthropicStreamTranslator,
  anthropicRateLimitHeaders,
  type AnthropicRequest,
} from './providers/anthropic-translation';
export {
  UpstreamError,
  isUpstreamError,
  parseRetryAfter,
  type UpstreamFailure,
} from './providers/upstream-error';
export {
  UpstreamHttpClient,
  type UpstreamHttpClientOptions,
} from './providers/upstream-http-client';
export {
  ProviderRegistry,
  maxOutputTokensOf,
  DEFAULT_MAX_OUTPUT_TOKENS,
} from './providers/provider-registry';
export { simulatedText, VOCABULARY } from './providers/simulated-text';
export {
  countPromptTokens,
  countTextTokens,
  tokenPieces,
  messageText,
} from './tokens/token-counter';
export {
  chatCompletionRequestSchema,
  parseChatCompletionRequest,
  requestedMaxTokens,
  type ChatCompletionRequest,
  type ChatMessage,
} from './openai/chat-completion-request';
export type {
  ChatCompletion,
  ChatCompletionChunk,
  CompletionUsage,
} from './openai/chat-completion-response';
export { toOpenAiError, type OpenAiErrorBody } from './openai/openai-errors';
export {
  UsagePublisher,
  type UsagePublisherOptions,
  type UsageEventSink,
} from './usage/usage-publisher';
