// The scale-out flags: -redisUrl (kept secret), -clusterNodeUrl and its default, -clusterLeaseTtl,
// and the per-account limits.
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/index.ts';

const ROOT = resolve(import.meta.dirname, '..', '..');
const load = (argv: string[]) => loadConfig({ argv, env: {}, cwd: ROOT });
const error = (argv: string[]): string => {
  try {
    load(argv);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
};

describe('scale-out flags', () => {
  it('off by default: no Redis, in-process', () => {
    const c = load([]);
    expect(c.redisUrl).toBeUndefined();
    expect(c.clusterNodeUrl).toBeUndefined();
    expect(c.clusterLeaseTtl).toBe(10_000);
    expect(c.live.accountMaxStreams).toBe(0);
    expect(c.live.accountMaxViewers).toBe(0);
  });

  it('-redisUrl: this node is named by -httpAddr unless -clusterNodeUrl says otherwise', () => {
    const c = load(['-redisUrl', 'redis://:pw@10.0.0.2:6379/1', '-httpAddr', '10.0.0.11:8935']);
    expect(c.redisUrl?.reveal()).toBe('redis://:pw@10.0.0.2:6379/1');
    expect(c.clusterNodeUrl).toBe('http://10.0.0.11:8935');
    const named = load([
      ...['-redisUrl', 'rediss://r:6380', '-httpAddr', '0.0.0.0:8935'],
      ...['-clusterNodeUrl', 'https://gw-a.example.com/', '-clusterLeaseTtl', '3s'],
    ]);
    expect(named.clusterNodeUrl).toBe('https://gw-a.example.com');
    expect(named.clusterLeaseTtl).toBe(3000);
    expect(load(['-liveAccountMaxStreams', '3', '-liveAccountMaxViewers', '50']).live).toMatchObject({
      accountMaxStreams: 3,
      accountMaxViewers: 50,
    });
  });

  it('refuses what cannot work, naming the flag, never showing the Redis password', () => {
    const scheme = error(['-redisUrl', 'http://:secretpw@r:6379']);
    expect(scheme).toContain('redisUrl: must be a URL starting with redis:// or rediss://');
    expect(scheme).not.toContain('secretpw');
    expect(error(['-redisUrl', 'redis://r:6379', '-httpAddr', '0.0.0.0:8935'])).toContain(
      'clusterNodeUrl: is required with -redisUrl when -httpAddr listens on every interface (0.0.0.0:8935)',
    );
    expect(error(['-clusterNodeUrl', 'ftp://x'])).toContain(
      'clusterNodeUrl: must be a URL starting with http:// or https://',
    );
    expect(error(['-clusterLeaseTtl', '500ms'])).toContain('clusterLeaseTtl');
    expect(error(['-liveAccountMaxStreams', '-1'])).toContain('liveAccountMaxStreams');
  });
});
