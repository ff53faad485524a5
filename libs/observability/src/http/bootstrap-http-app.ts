import type { DynamicModule, INestApplication, Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import express, { type Request, type RequestHandler, type Response } from 'express';
import helmet from 'helmet';
import { Logger } from 'nestjs-pino';
import { httpRequestDuration } from '../metrics/metrics';
import { sendProblem, toProblem } from './problem-details';
import { routeTemplate } from './route-template';
import { ProblemDetailsFilter } from './problem-details.filter';

export interface HttpAppOptions {
  /** App name for metrics and logs. */
  app: string;
  port: number;
  /** @default '0.0.0.0' */
  host?: string;
  /** Request body cap. @default '1mb' (1 MiB) */
  bodyLimit?: string;
  /** Install the problem+json filter. Apps with another error shape (OpenAI's) pass false. @default true */
  problemDetails?: boolean;
  /**
   * Answers body-parser errors (malformed JSON, body over the limit, bad charset), which happen
   * before Nest's routing and so never reach its exception filters. Apps with another error shape
   * pass their own. @default a problem+json answer
   */
  onBodyError?: (err: unknown, req: Request, res: Response) => void;
  /** Allowed CORS origins for browser UIs; empty = CORS off. @default [] */
  corsOrigins?: string[];
  /** Extra setup before listen (global pipes, more middleware). */
  configure?: (app: NestExpressApplication) => void;
}

/**
 * Creates, configures and starts an HTTP app the same way for every AOB app: pino logger, security
 * headers, 1 MiB JSON bodies with problem+json errors, request metrics, shutdown hooks.
 */
export async function bootstrapHttpApp(
  module: Type | DynamicModule,
  opts: HttpAppOptions,
): Promise<INestApplication> {
  const app = await NestFactory.create<NestExpressApplication>(module, {
    bufferLogs: true,
    bodyParser: false,
  });
  app.useLogger(app.get(Logger));
  app.disable('x-powered-by');
  app.set('trust proxy', 'loopback, linklocal, uniquelocal');
  app.use(helmet());
  if (opts.corsOrigins?.length) {
    app.enableCors({
      origin: opts.corsOrigins,
      credentials: false,
      exposedHeaders: ['x-request-id', 'Retry-After', 'RateLimit', 'RateLimit-Policy'],
    });
  }
  app.use(requestMetrics(opts.app));
  app.use(
    jsonBody(
      opts.bodyLimit ?? '1mb',
      opts.onBodyError ?? ((err, _req, res) => sendProblem(res, toProblem(err))),
    ),
  );
  if (opts.problemDetails !== false) app.useGlobalFilters(new ProblemDetailsFilter());
  opts.configure?.(app);
  app.enableShutdownHooks();
  await app.listen(opts.port, opts.host ?? '0.0.0.0');
  return app;
}

function jsonBody(
  limit: string,
  onError: NonNullable<HttpAppOptions['onBodyError']>,
): RequestHandler {
  const parse = express.json({
    limit,
    type: ['application/json', 'application/*+json'],
    strict: false,
  });
  // body-parser errors happen before Nest's routing; answer them here.
  return (req, res, next) =>
    parse(req, res, (err?: unknown) => (err ? onError(err, req, res) : next()));
}

function requestMetrics(app: string): RequestHandler {
  const hist = httpRequestDuration();
  return (req, res, next) => {
    const end = hist.startTimer();
    res.on('finish', () => {
      end({
        app,
        method: req.method,
        route: routeTemplate(req) ?? 'unmatched',
        status: String(res.statusCode),
      });
    });
    next();
  };
}
