import { createParamDecorator, type ExecutionContext } from '@nestjs/common';
import { DomainError } from '@aob/errors';
import type { AuthenticatedRequest } from './auth.guard';
import type { Principal } from './permissions';

/** The authenticated caller of this request. */
export const CurrentPrincipal = createParamDecorator(
  (_: unknown, ctx: ExecutionContext): Principal => {
    const p = ctx.switchToHttp().getRequest<AuthenticatedRequest>().principal;
    if (!p) throw new DomainError('Unauthorized', 'not authenticated');
    return p;
  },
);
