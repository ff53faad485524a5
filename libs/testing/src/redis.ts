import { randomBytes } from 'node:crypto';

/** Redis URL for tests. @default TEST_REDIS_URL or redis://127.0.0.1:6379 */
export const testRedisUrl = () => process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** A key prefix of its own per suite, so suites sharing one Redis never see each other's keys. */
export const uniqueKeyPrefix = (label = 'aobtest') => `${label}-${randomBytes(4).toString('hex')}`;
