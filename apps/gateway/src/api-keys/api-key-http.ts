import { z } from 'zod';
import { TENANT_ID_PATTERN, type CreatedApiKey } from '@aob/auth';
import { pageQuerySchema } from '../common/list-query';
import { invalid } from '../common/validation';

/** Query of `GET /v1/api-keys`: `tenantId` narrows a platform admin's listing. */
export const apiKeyListQuerySchema = pageQuerySchema.extend({
  tenantId: z.string().regex(TENANT_ID_PATTERN, 'invalid tenant id').optional(),
});

/** `POST /v1/api-keys` answers the key (once) with its listing fields. */
export type ApiKeyCreatedResponse = CreatedApiKey;

const KEY_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Key ids are UUIDs: anything else is refused before it reaches a query. */
export function assertKeyId(id: string): string {
  if (!KEY_ID.test(id)) {
    throw invalid('id is not a valid API key id', [
      { path: 'id', message: 'must be a lowercase UUID' },
    ]);
  }
  return id;
}
