import { DomainError, type ErrorCode } from '@aob/errors';
import type { Principal } from './permissions';

/** Who presented a credential that authenticated but was refused (for the audit log, never the answer). */
export interface RejectedActor {
  subject: string;
  tenantId: string;
  kind: Principal['kind'];
}

/**
 * A credential that proved who its holder is but may not be used (a token without a tenant or a
 * role): answered like any DomainError, and audited with the actor it names.
 */
export class CredentialRejected extends DomainError {
  constructor(
    code: Extract<ErrorCode, 'Forbidden' | 'Unauthorized'>,
    message: string,
    readonly actor: RejectedActor,
  ) {
    super(code, message);
  }
}
