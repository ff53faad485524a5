export { createTestDatabase, type TestDatabase } from './postgres';
export { testRedisUrl, uniqueKeyPrefix } from './redis';
export { freePort, waitFor } from './ports';
export { startNatsServer, type StartNatsServerOptions, type TestNatsServer } from './nats-server';
export { startAppUnderTest, type AppUnderTest } from './app-under-test';
export {
  startPostgresServer,
  type PostgresStopMode,
  type StartPostgresServerOptions,
  type TestPostgresServer,
} from './postgres-server';
export { startRedisServer, type TestRedisServer } from './redis-server';
