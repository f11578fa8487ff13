// localOrchestrator.fault (fault injection for tests and demos) and port 0 for its serviceAddr.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Config, ConfigError, loadConfig } from '../../src/config/index.ts';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'lp-config-fault-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function load(argv: string[] = [], env: NodeJS.ProcessEnv = {}): Config {
  return loadConfig({ argv, env, cwd: dir });
}

function fails(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    const e = err as ConfigError;
    expect(e.message).not.toContain('\n');
    expect(e.message).toMatch(/^config: \S+: .+ \(got .*\)$/);
    return e;
  }
  throw new Error('expected a ConfigError');
}

describe('localOrchestrator.fault', () => {
  it('is none by default, also in the shipped default.yaml', () => {
    expect(load().localOrchestrator.fault).toEqual({ kind: 'none' });
    expect(loadConfig({ argv: [], env: {} }).localOrchestrator.fault).toEqual({ kind: 'none' });
  });

  it('takes none, fail-start and <kind>:<duration> from a flag, env or YAML', () => {
    const fault = (v: string) => load(['-localOrchestratorFault', v]).localOrchestrator.fault;
    expect(fault('none')).toEqual({ kind: 'none' });
    expect(fault('fail-start')).toEqual({ kind: 'fail-start' });
    expect(fault('stall-output-after:3s')).toEqual({ kind: 'stall-output-after', afterMs: 3000 });
    expect(fault('exit-after:1m30s')).toEqual({ kind: 'exit-after', afterMs: 90_000 });
    expect(fault('events-error-after:500ms')).toEqual({ kind: 'events-error-after', afterMs: 500 });
    expect(fault('exit-after:0')).toEqual({ kind: 'exit-after', afterMs: 0 });
    expect(fault('warmup:8s')).toEqual({ kind: 'warmup', afterMs: 8000 });
    expect(load([], { LP_LOCALORCHESTRATORFAULT: 'fail-start' }).localOrchestrator.fault.kind).toBe(
      'fail-start',
    );
    const file = join(dir, 'x.yaml');
    writeFileSync(file, 'localOrchestrator:\n  fault: stall-output-after:1.5s\n');
    expect(load(['-config', file]).localOrchestrator.fault).toEqual({
      kind: 'stall-output-after',
      afterMs: 1500,
    });
  });

  it('a bad value is one line naming the key', () => {
    let e = fails(() => load(['-localOrchestratorFault', 'crash']));
    expect(e.key).toBe('localOrchestratorFault');
    expect(e.message).toBe(
      'config: localOrchestratorFault: must be one of none, fail-start, hang, stall-output-after:<duration>, exit-after:<duration>, events-error-after:<duration>, warmup:<duration>, in flag -localOrchestratorFault (got crash)',
    );
    e = fails(() => load(['-localOrchestratorFault', 'stall-output-after']));
    expect(e.key).toBe('localOrchestratorFault');
    expect(e.message).toContain('needs a duration');
    for (const bad of [
      'exit-after:soon',
      'exit-after:-1s',
      'exit-after:',
      'events-error-after:5x',
      'fail-start:1s',
    ]) {
      expect(fails(() => load(['-localOrchestratorFault', bad])).key).toBe('localOrchestratorFault');
    }
    e = fails(() => load([], { LP_LOCALORCHESTRATORFAULT: 'exit-after:3 seconds' }));
    expect(e.message).toContain('bad duration after "exit-after:"');
    expect(e.message).toContain('in env LP_LOCALORCHESTRATORFAULT');
  });
});

describe('localOrchestrator.serviceAddr port 0', () => {
  it('is allowed (pick a free port), for serviceAddr only', () => {
    expect(load(['-localOrchestratorServiceAddr', '127.0.0.1:0']).localOrchestrator.serviceAddr).toEqual({
      host: '127.0.0.1',
      port: 0,
      addr: '127.0.0.1:0',
    });
    expect(fails(() => load(['-httpAddr', '127.0.0.1:0'])).key).toBe('httpAddr');
    expect(fails(() => load(['-localOrchestratorServiceAddr', '127.0.0.1:65536'])).message).toContain(
      'outside 0..65535',
    );
  });
});
