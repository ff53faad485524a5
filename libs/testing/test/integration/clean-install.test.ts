import { callScript } from './run-node-script';

interface Explained {
  missing: string[];
  unexplained: string[];
}

const lock = {
  packages: {
    '': { devDependencies: { '@swc/core': '^1.15.0' } },
    'node_modules/@swc/core': {
      optionalDependencies: {
        '@swc/core-darwin-arm64': '1.16.22',
        '@swc/core-linux-x64-gnu': '1.16.22',
      },
    },
    'node_modules/turbo': { optionalDependencies: { '@turbo/windows-64': '2.5.0' } },
  },
};

const explain = (output: string) =>
  callScript<Explained>(
    'scripts/lib/clean-install.mjs',
    `m.explainMissing(${JSON.stringify(output)}, ${JSON.stringify(lock)})`,
  );

describe('clean-install (npm ci despite the registry lacking other platforms)', () => {
  it('explains a lock that lacks only optional platform builds', async () => {
    const out = [
      'npm error `npm ci` can only install packages when your package.json and package-lock.json are in sync.',
      'npm error Missing: @swc/core-darwin-arm64@ from lock file',
      'npm error Missing: @turbo/windows-64@ from lock file',
    ].join('\n');
    await expect(explain(out)).resolves.toEqual({
      missing: ['@swc/core-darwin-arm64', '@turbo/windows-64'],
      unexplained: [],
    });
  });

  it('keeps a dependency really missing from the lock as a failure', async () => {
    const out =
      'npm error Missing: zod@4.1.0 from lock file\nnpm error Missing: @swc/core-darwin-arm64@ from lock file';
    await expect(explain(out)).resolves.toEqual({
      missing: ['zod', '@swc/core-darwin-arm64'],
      unexplained: ['zod'],
    });
  });
});
