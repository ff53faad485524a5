import { type DynamicModule, Global, Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { AUTH_OPTIONS, AuthGuard, type AuthOptions } from './auth.guard';

/** Registers the global AuthGuard. */
@Global()
@Module({})
export class AuthModule {
  static forRoot(opts: AuthOptions): DynamicModule {
    return {
      module: AuthModule,
      providers: [{ provide: AUTH_OPTIONS, useValue: opts }, AuthGuard, { provide: APP_GUARD, useExisting: AuthGuard }],
      exports: [AuthGuard, AUTH_OPTIONS],
    };
  }
}
