export { AppModule, APP_NAME, type ModelGatewayModuleOptions } from './app.module';
export { startModelGateway, type StartModelGatewayOptions } from './bootstrap';
export { modelGatewayEnvSchema, loadModelGatewayConfig, type ModelGatewayConfig } from './config';
export {
  catalogSchema,
  deploymentSchema,
  simulationSchema,
  PROVIDER_KINDS,
  TIERS,
  TIER_PREFIX,
  tierRef,
  type Catalog,
  type Deployment,
  type ProviderKind,
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
export { Router, type RouteDecision, type ModelEntry } from './routing/router';
export type {
  Provider,
  ProviderRequest,
  ProviderChunk,
  ProviderCompletion,
  FinishReason,
  TokenUsage,
} from './providers/provider';
export { LocalProvider } from './providers/local-provider';
export { ProviderRegistry } from './providers/provider-registry';
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
