export { loadConfig, ConfigError } from './load-config';
export { baseEnvSchema, type BaseEnv, booleanFromEnv, durationMs } from './base-env';
