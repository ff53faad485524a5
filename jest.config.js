// One Jest run, three tiers (see README "Tests"). Sources are transformed by SWC, and `@aob/*`
// resolves to the libs' TypeScript sources, so tests never need a build of the libs.
const fs = require('node:fs');
const swc = JSON.parse(fs.readFileSync(`${__dirname}/.swcrc`, 'utf8'));
delete swc.$schema;

// ESM-only packages (jose v6, openid-client v6 and its oauth4webapi, oidc-provider v9): Jest's
// CommonJS module system cannot load them, so SWC turns them into CommonJS like our sources.
// Node itself loads them through require(esm) in the built apps.
const ESM_ONLY = ['jose', 'openid-client', 'oauth4webapi', 'oidc-provider'];
const esmToCjs = {
  jsc: { parser: { syntax: 'ecmascript' }, target: 'es2022' },
  module: { type: 'commonjs' },
  swcrc: false,
};

const common = {
  rootDir: __dirname,
  transform: {
    [`/node_modules/(${ESM_ONLY.join('|')})/.+\\.m?js$`]: ['@swc/jest', esmToCjs],
    '^.+\\.(t|j)s$': ['@swc/jest', { ...swc, swcrc: false }],
  },
  transformIgnorePatterns: [`/node_modules/(?!(${ESM_ONLY.join('|')})/)`],
  moduleNameMapper: {
    '^@aob/observability/tracing$': '<rootDir>/libs/observability/src/tracing/start',
    '^@aob/([a-z-]+)$': '<rootDir>/libs/$1/src',
  },
  testEnvironment: 'node',
  // .ts first: a stray compiled .js beside a source must never shadow it
  moduleFileExtensions: ['ts', 'js', 'mjs', 'json'],
  modulePathIgnorePatterns: ['<rootDir>/apps/.*/dist', '<rootDir>/libs/.*/dist'],
};

module.exports = {
  // integration suites start servers; e2e suites raise this further with jest.setTimeout
  testTimeout: 60_000,
  projects: [
    { ...common, displayName: 'unit', testMatch: ['<rootDir>/{apps,libs}/*/src/**/*.spec.ts'] },
    {
      ...common,
      displayName: 'integration',
      testMatch: ['<rootDir>/{apps,libs}/*/test/integration/**/*.test.ts'],
    },
    { ...common, displayName: 'e2e', testMatch: ['<rootDir>/test/e2e/**/*.e2e.ts'] },
  ],
};
