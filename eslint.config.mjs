// Lint for the AOB monorepo: type-aware typescript-eslint on every package's TypeScript, plain
// JavaScript rules on scripts/. Formatting is Prettier's job, not ESLint's.
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

const APPS = ['agent-executor', 'dlq-replayer', 'gateway', 'metering', 'model-gateway'];

/** Apps import libs, never each other; libs never import apps (shared/STYLE.md, habit 2). */
const NO_APP_IMPORTS = {
  group: [
    ...APPS.map((a) => `@aob/${a}`),
    ...APPS.map((a) => `@aob/${a}/*`),
    'apps/*',
    '**/apps/*',
  ],
  message:
    'Apps are deployed on their own: share code through a lib in libs/, not by importing an app.',
};

/**
 * A relative import that climbs out of its package reaches into another package's files, past its
 * public index and its build. Whether `../../x` climbs out depends on how deep the importing file
 * sits, so each depth below a package root gets its own pattern: a file in `libs/foo/src/a/` may
 * use `../../` (still inside libs/foo) but not `../../../`.
 */
const MAX_DEPTH = 8;
const climbOutBlocks = Array.from({ length: MAX_DEPTH }, (_, i) => {
  const depth = i + 1; // folders between the package root and the file
  const climb = '../'.repeat(depth + 1);
  return {
    files: [`{apps,libs}/*/${'*/'.repeat(depth)}*.ts`],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: [`${climb}*`, `${climb}**`],
              message:
                'This relative import leaves its package: import the other package as @aob/<name>.',
            },
            NO_APP_IMPORTS,
          ],
        },
      ],
    },
  };
});

export default tseslint.config(
  {
    ignores: [
      '**/dist/',
      '**/node_modules/',
      '**/coverage/',
      '**/.turbo/',
      'reports/',
      '.aob/',
      // Tool configuration files: CommonJS or ESM glue, not project code.
      '**/*.js',
      '**/*.cjs',
      '**/*.mjs',
      '!scripts/**/*.mjs',
    ],
  },
  {
    files: ['**/*.ts'],
    extends: [js.configs.recommended, ...tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-unused-vars': [
        'error',
        {
          argsIgnorePattern: '^_',
          varsIgnorePattern: '^_',
          caughtErrorsIgnorePattern: '^_',
          destructuredArrayIgnorePattern: '^_',
          ignoreRestSiblings: true,
        },
      ],
      // Nest and interface implementations declare `async` methods that need no await.
      '@typescript-eslint/require-await': 'off',
      // Empty marker classes are how Nest modules look.
      '@typescript-eslint/no-extraneous-class': 'off',
      'no-restricted-imports': ['error', { patterns: [NO_APP_IMPORTS] }],
    },
  },
  ...climbOutBlocks,
  {
    // Tests poke at `any`-typed bodies (supertest, JSON.parse), cast fakes, and pass methods to
    // expect(): the any family and unbound-method are noise there; the code under test keeps them.
    files: ['**/*.spec.ts', '**/test/**/*.ts', 'test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/unbound-method': 'off',
      '@typescript-eslint/no-explicit-any': 'off',
    },
  },
  {
    files: ['scripts/**/*.mjs'],
    extends: [js.configs.recommended],
    languageOptions: { ecmaVersion: 2023, sourceType: 'module', globals: globals.node },
    rules: {
      'no-unused-vars': [
        'error',
        {
          argsIgnorePattern: '^_',
          varsIgnorePattern: '^_',
          destructuredArrayIgnorePattern: '^_',
          caughtErrors: 'none',
        },
      ],
    },
  },
);
