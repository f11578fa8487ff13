import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { inspect } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseDocument } from 'yaml';
import {
  type Config,
  ConfigError,
  type LoadConfigOptions,
  loadConfig,
  Secret,
  usage,
} from '../../src/config/index.ts';
import { KEYS } from '../../src/config/schema.ts';

const ROOT = resolve(import.meta.dirname, '..', '..');

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'lp-config-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Loads with cwd = a temp dir, so config/default.yaml comes from there (absent unless written). */
function load(argv: string[] = [], env: NodeJS.ProcessEnv = {}, opts: LoadConfigOptions = {}): Config {
  return loadConfig({ argv, env, cwd: dir, ...opts });
}

function write(rel: string, text: string): string {
  const p = join(dir, rel);
  mkdirSync(join(p, '..'), { recursive: true });
  writeFileSync(p, text);
  return p;
}

function fails(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    const e = err as ConfigError;
    expect(e.message).not.toContain('\n');
    expect(e.message).toMatch(/^config: \S+: .+ \(got .*\)$/);
    expect(e.message).toContain(`config: ${e.key}: `);
    return e;
  }
  throw new Error('expected a ConfigError');
}

describe('defaults', () => {
  it('loads the shipped config/default.yaml from the project root', () => {
    const c = loadConfig({ argv: [], env: {} });
    expect(c.help).toBe(false);
    expect(c.httpAddr).toEqual({ host: '127.0.0.1', port: 8935, addr: '127.0.0.1:8935' });
    expect(c.orchAddr).toEqual([]);
    expect(c.network).toBe('offchain');
    expect(c.ethUrl).toBeUndefined();
    expect(c.ethPassword).toBeUndefined();
    expect(c.maxPricePerUnit).toBe(0n);
    expect(c.pixelsPerUnit).toBe(1n);
    expect(c.maxTicketEV).toBe(3000000000000n);
    expect(c.maxTotalEV).toBe(20000000000000n);
    expect(c.depositMultiplier).toBe(1);
    expect(c.livePaymentInterval).toBe(5000);
    expect(c.v).toBe(3);
    expect(c.logLevel).toBe('info');
    expect(c.grpcTimeoutMs).toBe(3000);
    expect(c.localOrchestrator.serviceAddr.addr).toBe('127.0.0.1:8936');
    expect(c.localOrchestrator.models).toEqual(['passthrough', 'invert', 'edges']);
    expect(c.localOrchestrator.pricePerUnit).toBe(0n);
    expect(c.localOrchestrator.capacity).toBe(8);
    expect(c.localOrchestrator.secret.reveal()).toMatch(/^[0-9a-f]{64}$/);
    expect(c.live).toMatchObject({
      defaultModel: 'invert',
      minSegmentDurationMs: 1000,
      pliIntervalMs: 2000,
      maxViewers: 100,
      maxStreams: 16,
      ingestTimeoutMs: 10000,
      firstOutputTimeoutMs: 30000,
      noOutputTimeoutMs: 10000,
      maxSwaps: 2,
      swapWindowMs: 180000,
      whipAuthToken: undefined,
      iceServers: [],
      webrtcUdpAddr: undefined,
      webrtcTcpAddr: undefined,
      natIp: [],
    });
    expect(c.http.bodyLimitBytes).toBe(1048576);
  });

  it('built-in defaults (no default.yaml) equal the shipped default.yaml', () => {
    const shipped = JSON.parse(JSON.stringify(loadConfig({ argv: [], env: {} })));
    const builtin = JSON.parse(JSON.stringify(load()));
    expect(builtin).toEqual(shipped);
  });

  it('default.yaml has every key, each with a comment, and nothing else', () => {
    const text = readFileSync(join(ROOT, 'config', 'default.yaml'), 'utf8');
    const doc = parseDocument(text);
    const paths: string[] = [];
    const js = doc.toJS() as Record<string, unknown>;
    for (const [k, v] of Object.entries(js)) {
      if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
        for (const sub of Object.keys(v)) paths.push(`${k}.${sub}`);
      } else paths.push(k);
    }
    expect(paths.sort()).toEqual(KEYS.map((k) => k.yaml.join('.')).sort());
    const lines = text.split('\n');
    for (const k of KEYS) {
      const leaf = k.yaml[k.yaml.length - 1];
      const i = lines.findIndex((l) => new RegExp(`^\\s*${leaf}:`).test(l) && !l.trim().startsWith('#'));
      expect(lines[i - 1].trim().startsWith('#'), `comment above ${k.yaml.join('.')}`).toBe(true);
    }
  });

  it('config is frozen and the random local orchestrator secret differs per load', () => {
    const a = load();
    expect(Object.isFrozen(a)).toBe(true);
    expect(Object.isFrozen(a.live)).toBe(true);
    expect(Object.isFrozen(a.orchAddr)).toBe(true);
    expect(a.localOrchestrator.secret.reveal()).not.toBe(load().localOrchestrator.secret.reveal());
  });

  it('usage lists every flag with its default', () => {
    const u = usage();
    for (const k of KEYS) expect(u).toContain(`-${k.flag} `);
    expect(u).toContain('-config path');
    expect(u).toContain('-help, -h');
    expect(u).toContain('(default "127.0.0.1:8935")');
  });

  it('flag names and env names are unique', () => {
    expect(new Set(KEYS.map((k) => k.flag.toLowerCase())).size).toBe(KEYS.length);
    expect(KEYS.find((k) => k.yaml.join('.') === 'live.minSegmentDurationMs')?.env).toBe(
      'LP_LIVEMINSEGMENTDURATIONMS',
    );
  });
});

describe('layers', () => {
  it('default.yaml < -config file < env < flag', () => {
    write('config/default.yaml', 'httpAddr: 127.0.0.1:1001\nv: 1\nlive:\n  maxViewers: 1\n');
    const extra = write('extra.yaml', 'httpAddr: 127.0.0.1:1002\nlive:\n  maxViewers: 2\n');
    expect(load().httpAddr.port).toBe(1001);
    expect(load().v).toBe(1);
    expect(load(['-config', extra]).httpAddr.port).toBe(1002);
    expect(load(['-config', extra]).v).toBe(1);
    expect(load(['-config', 'extra.yaml'], { LP_HTTPADDR: '127.0.0.1:1003' }).httpAddr.port).toBe(1003);
    const c = load(['-config', extra, '-httpAddr', '127.0.0.1:1004'], {
      LP_HTTPADDR: '127.0.0.1:1003',
      LP_LIVEMAXVIEWERS: '3',
    });
    expect(c.httpAddr.port).toBe(1004);
    expect(c.live.maxViewers).toBe(3);
    expect(c.configFile).toBe(extra);
    expect(load(['-liveMaxViewers=4'], { LP_LIVEMAXVIEWERS: '3' }).live.maxViewers).toBe(4);
  });

  it('LP_CONFIG names the extra file; an empty env var is ignored', () => {
    write('x.yaml', 'v: 5\n');
    expect(load([], { LP_CONFIG: 'x.yaml' }).v).toBe(5);
    expect(load([], { LP_V: '' }).v).toBe(3);
    expect(load([], { LP_V: '6' }).logLevel).toBe('trace');
  });

  it('null or empty YAML values leave the lower layer in place / unset', () => {
    write('config/default.yaml', 'v: 2\norchWebhookUrl: https://hook.example/x\n');
    write('x.yaml', 'v:\norchWebhookUrl: ""\n');
    const c = load(['-config', 'x.yaml']);
    expect(c.v).toBe(2);
    expect(c.orchWebhookUrl).toBeUndefined();
  });

  it('a later layer fixes an invalid value in an earlier one', () => {
    write('config/default.yaml', 'httpAddr: nonsense\n');
    expect(load(['-httpAddr', ':9000']).httpAddr).toEqual({
      host: '0.0.0.0',
      port: 9000,
      addr: '0.0.0.0:9000',
    });
  });

  it('YAML accepts lists, and nested sections', () => {
    write(
      'x.yaml',
      [
        'orchAddr: [o1.example:8935, "https://o2.example:9000"]',
        'localOrchestrator:',
        '  models:',
        '    - invert',
        '  capacity: 2',
        'live:',
        '  defaultModel: invert',
        '  iceServers:',
        '    - urls: stun:stun.example.org:3478',
        '    - urls: [turn:turn.example.org:3478]',
        '      username: u',
        '      credential: turnpass',
      ].join('\n'),
    );
    const c = load(['-config', 'x.yaml']);
    expect(c.orchAddr).toEqual(['https://o1.example:8935', 'https://o2.example:9000']);
    expect(c.localOrchestrator.models).toEqual(['invert']);
    expect(c.localOrchestrator.capacity).toBe(2);
    expect(c.live.iceServers[0]).toEqual({ urls: ['stun:stun.example.org:3478'] });
    expect(c.live.iceServers[1].credential?.reveal()).toBe('turnpass');
    expect(JSON.stringify(c)).not.toContain('turnpass');
  });
});

describe('flag syntax (Go flag package)', () => {
  it('accepts -name value, -name=value, --name value, --name=value', () => {
    expect(load(['-v', '4']).v).toBe(4);
    expect(load(['-v=4']).v).toBe(4);
    expect(load(['--v', '5']).v).toBe(5);
    expect(load(['--v=5']).logLevel).toBe('debug');
    expect(load(['-v', '0']).logLevel).toBe('warn');
  });

  it('a value may start with a dash; the last repeat wins', () => {
    const e = fails(() => load(['-maxPricePerUnit', '-5']));
    expect(e.key).toBe('maxPricePerUnit');
    expect(load(['-v', '1', '-v', '2']).v).toBe(2);
  });

  it('-help and -h set help, as -h or -help=true; -help=false does not', () => {
    expect(load(['-help']).help).toBe(true);
    expect(load(['--h']).help).toBe(true);
    expect(load(['-h=true']).help).toBe(true);
    expect(load(['-help=false']).help).toBe(false);
  });

  it('-help still returns a config when other settings are broken', () => {
    const c = load(['-httpAddr', 'bad', '-help']);
    expect(c.help).toBe(true);
    expect(c.httpAddr.port).toBe(8935);
  });

  it('unknown flags, missing values and stray arguments are errors', () => {
    let e = fails(() => load(['-orchadr', 'a:1']));
    expect(e.key).toBe('orchadr');
    expect(e.message).toContain('unknown flag');
    expect(e.message).toContain('did you mean -orchAddr?');
    e = fails(() => load(['-nope=1']));
    expect(e.key).toBe('nope');
    expect(e.message).toContain('(got -nope)');
    e = fails(() => load(['-v']));
    expect(e.key).toBe('v');
    expect(e.message).toContain('needs a value');
    e = fails(() => load(['-orchAddr', 'a:1', 'b:2']));
    expect(e.key).toBe('args');
    expect(e.message).toContain('(got b:2)');
    e = fails(() => load(['---v=1']));
    expect(e.key).toBe('args');
  });
});

describe('values', () => {
  it('normalises -orchAddr a:1,b:2 to https URLs', () => {
    expect(load(['-orchAddr', 'a:1,b:2']).orchAddr).toEqual(['https://a:1', 'https://b:2']);
    expect(load(['-orchAddr', ' https://o.example:8935 , 10.0.0.1:9, [::1]:7 ,']).orchAddr).toEqual([
      'https://o.example:8935',
      'https://10.0.0.1:9',
      'https://[::1]:7',
    ]);
    expect(load(['-orchAddr', 'https://o.example']).orchAddr).toEqual(['https://o.example:443']);
    expect(load(['-orchAddr', 'a:1,a:1']).orchAddr).toEqual(['https://a:1']);
  });

  it('rejects bad orchestrator addresses, naming the bad item', () => {
    for (const bad of ['a', 'a:0', 'http://a:1', 'https://a:1/path', 'a:1,b:x']) {
      const e = fails(() => load(['-orchAddr', bad]));
      expect(e.key).toBe('orchAddr');
    }
    expect(fails(() => load(['-orchAddr', 'a:1,b:x'])).message).toContain('(got b:x)');
  });

  it('listen addresses: host:port, :port, [v6]:port; port 1..65535', () => {
    expect(load(['-httpAddr', ':8935']).httpAddr).toEqual({
      host: '0.0.0.0',
      port: 8935,
      addr: '0.0.0.0:8935',
    });
    expect(load(['-httpAddr', 'localhost:1']).httpAddr.port).toBe(1);
    expect(load(['-httpAddr', '[::1]:65535']).httpAddr).toEqual({
      host: '::1',
      port: 65535,
      addr: '[::1]:65535',
    });
    for (const bad of ['127.0.0.1:0', '127.0.0.1:65536', '127.0.0.1:http', '127.0.0.1', 'bad host:1', '']) {
      const e = fails(() => load(['-httpAddr', bad]));
      expect(e.key).toBe('httpAddr');
      expect(e.message).toContain('config: httpAddr: ');
    }
    expect(fails(() => load(['-httpAddr', '127.0.0.1:99999'])).message).toBe(
      'config: httpAddr: has a port outside 1..65535, in flag -httpAddr (got 127.0.0.1:99999)',
    );
  });

  it('the error names where the value came from', () => {
    expect(fails(() => load([], { LP_HTTPADDR: ':0' })).message).toContain('in env LP_HTTPADDR');
    const f = write('x.yaml', 'live:\n  maxViewers: lots\n');
    const e = fails(() => load(['-config', f]));
    expect(e.key).toBe('liveMaxViewers');
    expect(e.source).toBe(f);
    expect(e.message).toContain('(got lots)');
  });

  it('network must be offchain or arbitrum-one-mainnet; on-chain needs ethUrl', () => {
    let e = fails(() => load(['-network', 'mainnet']));
    expect(e.key).toBe('network');
    expect(e.message).toContain('(got mainnet)');
    e = fails(() => load(['-network', 'arbitrum-one-mainnet']));
    expect(e.key).toBe('ethUrl');
    expect(e.message).toContain('required');
    const c = load(['-network', 'arbitrum-one-mainnet', '-ethUrl', 'https://arb1.example/rpc']);
    expect(c.network).toBe('arbitrum-one-mainnet');
    expect(c.ethUrl).toBe('https://arb1.example/rpc');
    expect(fails(() => load(['-ethUrl', 'not a url'])).key).toBe('ethUrl');
  });

  it('prices and EVs are bigints; negatives, floats and junk are rejected', () => {
    const c = load(['-maxPricePerUnit', '123456789012345678901234567890', '-pixelsPerUnit', '1000000']);
    expect(c.maxPricePerUnit).toBe(123456789012345678901234567890n);
    expect(c.pixelsPerUnit).toBe(1000000n);
    let e = fails(() => load(['-maxPricePerUnit', '-1']));
    expect(e.key).toBe('maxPricePerUnit');
    expect(e.message).toContain('negative');
    expect(e.message).toContain('(got -1)');
    e = fails(() => load(['-maxPricePerUnit=1.5']));
    expect(e.message).toContain('whole number');
    expect(fails(() => load(['-maxPricePerUnit=1e12'])).key).toBe('maxPricePerUnit');
    expect(fails(() => load(['-pixelsPerUnit', '0'])).key).toBe('pixelsPerUnit');
    expect(fails(() => load(['-maxTicketEV', '0'])).key).toBe('maxTicketEV');
    e = fails(() => load(['-maxTicketEV', '30', '-maxTotalEV', '20']));
    expect(e.key).toBe('maxTotalEV');
    expect(e.message).toContain('maxTicketEV');
  });

  it('integers reject junk, floats, out-of-range values', () => {
    let e = fails(() => load(['-liveMaxStreams', '12abc']));
    expect(e.key).toBe('liveMaxStreams');
    expect(e.message).toBe(
      'config: liveMaxStreams: must be a positive integer, in flag -liveMaxStreams (got 12abc)',
    );
    e = fails(() => load(['-localOrchestratorCapacity', '2.5']));
    expect(e.key).toBe('localOrchestratorCapacity');
    expect(fails(() => load(['-v', '7'])).key).toBe('v');
    expect(fails(() => load(['-v', '-1'])).key).toBe('v');
    expect(fails(() => load(['-depositMultiplier', '0'])).key).toBe('depositMultiplier');
    expect(fails(() => load(['-httpBodyLimitBytes', '99999999999999999999'])).key).toBe('httpBodyLimitBytes');
    expect(load(['-httpBodyLimitBytes', '2048']).http.bodyLimitBytes).toBe(2048);
  });

  it('durations: 500ms, 5s, 2m, 1m30s, 1.5s, plain ms', () => {
    expect(load(['-livePaymentInterval', '500ms']).livePaymentInterval).toBe(500);
    expect(load(['-livePaymentInterval', '5s']).livePaymentInterval).toBe(5000);
    expect(load(['-livePaymentInterval', '2m']).livePaymentInterval).toBe(120000);
    expect(load(['-livePaymentInterval', '1m30s']).livePaymentInterval).toBe(90000);
    expect(load(['-livePaymentInterval', '1.5s']).livePaymentInterval).toBe(1500);
    expect(load(['-livePaymentInterval', '750']).livePaymentInterval).toBe(750);
    expect(load(['-liveIngestTimeoutMs', '30s']).live.ingestTimeoutMs).toBe(30000);
    for (const bad of ['5 seconds', '5x', '-5s', '0', '1.5ms', '30d', '']) {
      const e = fails(() => load(['-livePaymentInterval', bad]));
      expect(e.key).toBe('livePaymentInterval');
    }
    expect(fails(() => load(['-grpcTimeoutMs', 'soon'])).message).toContain('(got soon)');
  });

  it('optional URL, address and file keys', () => {
    expect(load(['-orchWebhookUrl', 'https://hook.example/orchs']).orchWebhookUrl).toBe(
      'https://hook.example/orchs',
    );
    expect(fails(() => load(['-orchWebhookUrl', 'ftp://x'])).key).toBe('orchWebhookUrl');
    expect(load([]).live.publicUrl).toBeUndefined();
    expect(load(['-livePublicUrl', 'https://gw.example']).live.publicUrl).toBe('https://gw.example/');
    expect(fails(() => load(['-livePublicUrl', 'gw.example'])).key).toBe('livePublicUrl');
    const addr = '0x1234567890abcdef1234567890ABCDEF12345678';
    expect(load(['-ethController', addr]).ethController).toBe(addr);
    expect(fails(() => load(['-ethController', '0x123'])).key).toBe('ethController');
    const prices = write('prices.json', '{}');
    expect(load(['-maxPricePerCapability', 'prices.json']).maxPricePerCapability).toEqual({
      source: prices,
      entries: [],
    });
    const e = fails(() => load(['-maxPricePerCapability', 'missing.json']));
    expect(e.key).toBe('maxPricePerCapability');
    expect(e.message).toContain('not found');
    expect(load(['-ethKeystorePath', 'ks']).ethKeystorePath).toBe(join(dir, 'ks'));
  });

  it('local orchestrator models and live.defaultModel must agree when it runs', () => {
    expect(load(['-localOrchestratorModels', 'invert, edges']).localOrchestrator.models).toEqual([
      'invert',
      'edges',
    ]);
    let e = fails(() => load(['-localOrchestratorModels', 'edges']));
    expect(e.key).toBe('liveDefaultModel');
    expect(load(['-localOrchestratorModels', 'edges', '-liveDefaultModel', 'edges']).live.defaultModel).toBe(
      'edges',
    );
    // With remote orchestrators the local list is irrelevant.
    expect(load(['-localOrchestratorModels', 'edges', '-orchAddr', 'o:1']).live.defaultModel).toBe('invert');
    e = fails(() => load(['-localOrchestratorModels', 'bad model']));
    expect(e.key).toBe('localOrchestratorModels');
    e = fails(() => load(['-localOrchestratorServiceAddr', ':8935']));
    expect(e.key).toBe('localOrchestratorServiceAddr');
  });

  it('shared WebRTC ports and the NAT address: IP literals only', () => {
    const c = load([
      '-liveWebrtcUdpAddr',
      ':8189',
      '-liveWebrtcTcpAddr',
      '[::1]:8190',
      '-liveNatIp',
      '203.0.113.7',
    ]);
    expect(c.live.webrtcUdpAddr).toMatchObject({ host: '0.0.0.0', port: 8189 });
    expect(c.live.webrtcTcpAddr).toMatchObject({ host: '::1', port: 8190 });
    expect(c.live.natIp).toEqual(['203.0.113.7']);
    expect(load([], { LP_LIVENATIP: '203.0.113.7, 2001:db8::7' }).live.natIp).toEqual([
      '203.0.113.7',
      '2001:db8::7',
    ]);
    let e = fails(() => load(['-liveWebrtcUdpAddr', 'gateway.example:8189']));
    expect(e.key).toBe('liveWebrtcUdpAddr');
    expect(e.message).toContain('must be an IP address and port');
    e = fails(() => load(['-liveWebrtcTcpAddr', '8189']));
    expect(e.key).toBe('liveWebrtcTcpAddr');
    e = fails(() => load(['-liveNatIp', '203.0.113.7,my.host']));
    expect(e.key).toBe('liveNatIp');
    expect(e.message).toContain('(got my.host)');
  });

  it('ICE servers from a flag: JSON or comma-separated stun URLs', () => {
    expect(load(['-liveIceServers', 'stun:a.example:3478,stun:b.example']).live.iceServers).toEqual([
      { urls: ['stun:a.example:3478'] },
      { urls: ['stun:b.example'] },
    ]);
    const c = load([], {
      LP_LIVEICESERVERS: '[{"urls":["turn:t.example:3478"],"username":"u","credential":"iceSecret1"}]',
    });
    expect(c.live.iceServers[0].username).toBe('u');
    expect(c.live.iceServers[0].credential?.reveal()).toBe('iceSecret1');
    let e = fails(() => load(['-liveIceServers', 'http://x']));
    expect(e.key).toBe('liveIceServers');
    e = fails(() => load(['-liveIceServers', 'stun:a,turn:b']));
    expect(e.message).toContain('need a username and a credential');
    expect(e.message).toContain('(got turn:b)');
    e = fails(() => load(['-liveIceServers', '[{"urls":"turn:t","credential":"iceSecret2"}]']));
    expect(e.message).not.toContain('iceSecret2');
    e = fails(() => load(['-liveIceServers', '[{"urls":"turn:t","credential":"iceSecret3"']));
    expect(e.message).not.toContain('iceSecret3');
  });
});

describe('secrets', () => {
  const PW = 'hunter2-Sup3rS3cret';

  it('the password never appears in JSON, inspect or String of the config', () => {
    const c = load(['-ethPassword', PW, '-orchSecret', 'orch-s3cret', '-liveWhipAuthToken', 'whip-t0ken'], {
      LP_LOCALORCHESTRATORSECRET: 'local-s3cret',
    });
    expect(c.ethPassword).toBeInstanceOf(Secret);
    expect(c.ethPassword?.reveal()).toBe(PW);
    expect(c.orchSecret?.reveal()).toBe('orch-s3cret');
    expect(c.live.whipAuthToken?.reveal()).toBe('whip-t0ken');
    expect(c.live.whipAuthToken?.equals('whip-t0ken')).toBe(true);
    expect(c.live.whipAuthToken?.equals('whip-t0ke')).toBe(false);
    expect(c.localOrchestrator.secret.reveal()).toBe('local-s3cret');
    const outputs = [
      JSON.stringify(c),
      JSON.stringify(c, null, 2),
      inspect(c, { depth: 10 }),
      `${c.ethPassword}`,
    ];
    for (const out of outputs) {
      for (const s of [PW, 'orch-s3cret', 'whip-t0ken', 'local-s3cret']) expect(out).not.toContain(s);
    }
    expect(JSON.parse(JSON.stringify(c)).ethPassword).toBe('<hidden>');
  });

  it('-ethPassword may name a file holding the password', () => {
    write('pw.txt', `${PW}\n`);
    expect(load(['-ethPassword', 'pw.txt']).ethPassword?.reveal()).toBe(PW);
  });

  it('the password never appears in an error message', () => {
    // An invalid secret source: a YAML mapping instead of a string.
    write('x.yaml', `ethPassword:\n  nested: ${PW}\n`);
    let e = fails(() => load(['-config', 'x.yaml']));
    expect(e.key).toBe('ethPassword');
    expect(e.message).toContain('(got <hidden>)');
    expect(e.message).not.toContain(PW);
    // A stray argument after a secret flag may be part of the password.
    e = fails(() => load(['-ethPassword', 'hunter2', 'Sup3rS3cret']));
    expect(e.message).not.toContain('Sup3rS3cret');
    // An unknown flag carrying a value only shows the flag name.
    e = fails(() => load([`-ethPasword=${PW}`]));
    expect(e.key).toBe('ethPasword');
    expect(e.message).toContain('did you mean -ethPassword?');
    expect(e.message).not.toContain(PW);
    // A misspelt YAML key only shows the key.
    write('y.yaml', `ethPasword: ${PW}\n`);
    e = fails(() => load(['-config', 'y.yaml']));
    expect(e.key).toBe('ethPasword');
    expect(e.message).not.toContain(PW);
    // A YAML syntax error does not quote the offending line.
    write('z.yaml', `ethPassword: "${PW}\nv: [\n`);
    e = fails(() => load(['-config', 'z.yaml']));
    expect(e.message).not.toContain(PW);
  });
});

describe('config files', () => {
  it('a missing default.yaml is fine; a missing -config file is an error', () => {
    expect(load().httpAddr.port).toBe(8935);
    const e = fails(() => load(['-config', 'nope.yaml']));
    expect(e.key).toBe('config');
    expect(e.message).toContain('nope.yaml');
  });

  it('a YAML syntax error names key config and the file path', () => {
    const p = write('config/default.yaml', 'live:\n  maxViewers: [1,\nv: 3\n');
    const e = fails(() => load());
    expect(e.key).toBe('config');
    expect(e.message).toContain(p);
    expect(e.message).toMatch(/line \d+/);
  });

  it('unknown YAML keys are errors with a suggestion', () => {
    write('x.yaml', 'live:\n  maxViewer: 3\n');
    let e = fails(() => load(['-config', 'x.yaml']));
    expect(e.key).toBe('live.maxViewer');
    expect(e.message).toContain('did you mean live.maxViewers?');
    write('y.yaml', 'liveMaxViewers: 3\n');
    e = fails(() => load(['-config', 'y.yaml']));
    expect(e.message).toContain('write it as live.maxViewers');
    write('z.yaml', 'live: 3\n');
    expect(fails(() => load(['-config', 'z.yaml'])).key).toBe('live');
    write('w.yaml', '- a\n- b\n');
    expect(fails(() => load(['-config', 'w.yaml'])).key).toBe('config');
  });

  it('an empty -config file changes nothing; duplicate keys are errors', () => {
    write('empty.yaml', '# nothing\n');
    expect(load(['-config', 'empty.yaml']).v).toBe(3);
    write('dup.yaml', 'v: 1\nv: 2\n');
    expect(fails(() => load(['-config', 'dup.yaml'])).key).toBe('config');
  });
});
