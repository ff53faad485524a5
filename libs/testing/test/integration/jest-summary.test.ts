import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { repoRoot, runNode } from './run-node-script';

const SUMMARY = path.join(repoRoot, 'scripts/lib/jest-summary.mjs');

/** Trimmed from a real `jest --json` report: the fields the summary reads. */
function report(overrides: Record<string, unknown> = {}) {
  return {
    numPassedTests: 3,
    numFailedTests: 1,
    numPendingTests: 0,
    numTodoTests: 0,
    numRuntimeErrorTestSuites: 0,
    success: false,
    testResults: [
      {
        name: path.join(repoRoot, 'libs/a/src/a.spec.ts'),
        status: 'passed',
        message: '',
        assertionResults: [
          { fullName: 'a works', title: 'works', status: 'passed' },
          { fullName: 'a still works', title: 'still works', status: 'passed' },
        ],
      },
      {
        name: path.join(repoRoot, 'libs/b/src/b.spec.ts'),
        status: 'failed',
        message: 'expect(received).toBe(expected)',
        assertionResults: [
          { fullName: 'b adds', title: 'adds', status: 'passed' },
          { fullName: 'b subtracts', title: 'subtracts', status: 'failed' },
        ],
      },
    ],
    ...overrides,
  };
}

describe('jest-summary (the CI closing line)', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'aob-jest-summary-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  async function summarize(json: unknown) {
    const file = path.join(dir, `${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(file, JSON.stringify(json));
    const run = await runNode([SUMMARY, file]);
    return { ...run, last: run.stdout.trimEnd().split('\n').at(-1) };
  }

  it('counts passed and failed tests and names the failures', async () => {
    const run = await summarize(report());
    expect(run.last).toBe('tests: 3 passed, 1 failed');
    expect(run.stdout).toBe('tests: 3 passed, 1 failed\n');
    expect(run.stderr).toContain('libs/b/src/b.spec.ts › b subtracts');
    expect(run.code).toBe(1);
  });

  it('counts a suite that crashed before running any test as failed', async () => {
    const crashed = report({
      numFailedTests: 0,
      numRuntimeErrorTestSuites: 1,
      testResults: [
        report().testResults[0],
        {
          name: path.join(repoRoot, 'libs/c/test/integration/c.test.ts'),
          status: 'failed',
          message: '  ● Test suite failed to run\n\n    Cannot find module ./missing',
          testExecError: { message: 'Cannot find module ./missing' },
          assertionResults: [],
        },
      ],
      numPassedTests: 2,
    });
    const run = await summarize(crashed);
    expect(run.last).toBe('tests: 2 passed, 1 failed');
    expect(run.stderr).toContain('c.test.ts › (suite failed to run: Cannot find module ./missing)');
    expect(run.code).toBe(1);
  });

  it('passes a green report, listing skipped tests after the counts', async () => {
    const run = await summarize(
      report({
        numFailedTests: 0,
        numPendingTests: 2,
        success: true,
        testResults: [report().testResults[0]],
      }),
    );
    expect(run.last).toBe('tests: 3 passed, 0 failed, 2 skipped');
    expect(run.code).toBe(0);
  });

  it('fails when there is no report, or it ran no test', async () => {
    const missing = await runNode([SUMMARY, path.join(dir, 'absent.json')]);
    expect(missing.stdout).toBe('tests: 0 passed, 0 failed\n');
    expect(missing.stderr).toContain('no Jest report');
    expect(missing.code).toBe(2);

    const empty = await summarize(
      report({ numPassedTests: 0, numFailedTests: 0, testResults: [] }),
    );
    expect(empty.last).toBe('tests: 0 passed, 0 failed');
    expect(empty.code).toBe(2);
  });

  it('reads the report a real Jest run writes', async () => {
    // A throwaway project: two passing tests, one failing, one suite that throws while loading.
    const project = path.join(dir, 'project');
    mkdirSync(project);
    writeFileSync(path.join(project, 'good.test.js'), "test('a', () => {}); test('b', () => {});");
    writeFileSync(
      path.join(project, 'bad.test.js'),
      "test('c', () => {}); test('d', () => { expect(1).toBe(2); });",
    );
    writeFileSync(path.join(project, 'broken.test.js'), "throw new Error('boom at load');");
    const jestBin = path.join(repoRoot, 'node_modules/jest/bin/jest.js');
    const out = path.join(dir, 'real.json');
    const jest = await runNode(
      [
        jestBin,
        '--ci',
        '--no-watchman',
        '--config',
        '{"testEnvironment":"node","transform":{}}',
        '--json',
        `--outputFile=${out}`,
      ],
      { cwd: project },
    );
    expect(jest.code).toBe(1);
    const run = await runNode([SUMMARY, out]);
    expect(run.stdout).toBe('tests: 3 passed, 2 failed\n');
    expect(run.stderr).toContain('bad.test.js › d');
    expect(run.stderr).toMatch(/broken\.test\.js › \(suite failed to run: .*boom at load/);
    expect(run.code).toBe(1);
  });
});
