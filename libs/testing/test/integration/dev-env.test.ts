import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { callScript } from './run-node-script';

interface DevEnv {
  values: Record<string, string>;
  created: string[];
}

const SCRIPT = 'scripts/lib/dev-env.mjs';
const load = (file: string) =>
  callScript<DevEnv>(SCRIPT, `m.loadOrCreateDevEnv(${JSON.stringify(file)})`);
const mode = (p: string) => statSync(p).mode & 0o777;

describe('dev-env (the keys npm start generates)', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'aob-dev-env-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('generates both keys once, private to the user, and keeps them', async () => {
    const file = path.join(dir, '.aob', 'dev.env');
    const first = await load(file);
    expect(first.created).toEqual(['AOB_BOOTSTRAP_ADMIN_KEY', 'AOB_SERVICE_KEY']);
    expect(first.values.AOB_BOOTSTRAP_ADMIN_KEY).toMatch(/^aob_[A-Za-z0-9_-]{43}$/);
    expect(first.values.AOB_SERVICE_KEY).toMatch(/^aob_svc_[A-Za-z0-9_-]{43}$/);
    expect(mode(file)).toBe(0o600);
    expect(mode(path.dirname(file))).toBe(0o700);

    const second = await load(file);
    expect(second).toEqual({ values: first.values, created: [] });
    expect(readFileSync(file, 'utf8')).toContain(
      `AOB_BOOTSTRAP_ADMIN_KEY=${first.values.AOB_BOOTSTRAP_ADMIN_KEY}\n`,
    );

    const elsewhere = await load(path.join(dir, 'other.env'));
    expect(elsewhere.values.AOB_BOOTSTRAP_ADMIN_KEY).not.toBe(first.values.AOB_BOOTSTRAP_ADMIN_KEY);
  });

  it('keeps a key written by hand, adds the missing one, and tightens the mode', async () => {
    const file = path.join(dir, 'dev.env');
    writeFileSync(file, '# mine\nAOB_BOOTSTRAP_ADMIN_KEY = aob_my_own_key_1234567890\n');
    chmodSync(file, 0o644);
    const env = await load(file);
    expect(env.created).toEqual(['AOB_SERVICE_KEY']);
    expect(env.values.AOB_BOOTSTRAP_ADMIN_KEY).toBe('aob_my_own_key_1234567890');
    expect(mode(file)).toBe(0o600);
  });
});
