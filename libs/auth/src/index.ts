export * from './permissions';
export { extractCredential, secretEquals, type Credential } from './credentials';
export {
  AuthGuard,
  RequirePermission,
  AUTH_OPTIONS,
  REQUIRED_PERMISSION_KEY,
  type AuthOptions,
  type AuthenticatedRequest,
} from './auth.guard';
export { CurrentPrincipal } from './current-principal.decorator';
export { AuthModule } from './auth.module';
export { Public } from '@aob/observability';
