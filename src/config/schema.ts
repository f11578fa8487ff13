import { readFileSync, statSync } from 'node:fs';
import { isIP } from 'node:net';
import { isAbsolute, resolve } from 'node:path';
import {
  ProfileError,
  parseJsonProfiles,
  parsePresetNames,
  type TranscodeProfile,
} from '../batch/profiles.ts';
import { type CapabilityPrices, parseCapabilityPrices } from './capability-prices.ts';
import { frameSize, orchestratorFault, pipelineRestarts } from './fault.ts';
import {
  bigint,
  bool,
  duration,
  ethAddress,
  Invalid,
  iceServers,
  int,
  type ListenAddr,
  list,
  listenAddr,
  listenAddrOrFreePort,
  modelId,
  oneOf,
  optional,
  orchUrl,
  type Parser,
  type Raw,
  scalar,
  string,
  url,
} from './parse.ts';
import { Secret } from './secret.ts';

/**
 * One configuration key. Naming rule: top-level YAML keys keep go-livepeer's flag names
 * (`httpAddr`, `maxPricePerUnit`); a key inside a YAML section has the flag name
 * `<section><Leaf>` (`live.maxViewers` <-> `-liveMaxViewers`). The env var is always
 * `LP_` + the flag name upper-cased (`LP_LIVEMAXVIEWERS`).
 */
export interface KeyDef<T> {
  readonly flag: string;
  /** YAML path: `['httpAddr']` or `['live', 'maxViewers']`. */
  readonly yaml: readonly [string] | readonly [string, string];
  readonly env: string;
  /** Value placeholder for usage(): `host:port`, `int`, `wei`, `duration`... */
  readonly type: string;
  /** Built-in default as raw text; undefined = not set. */
  readonly default: Raw | undefined;
  readonly help: string;
  /** Never show the value (errors show `<hidden>`; the Config holds a Secret). */
  readonly secret: boolean;
  readonly parse: Parser<T>;
}

export const SECTIONS = ['localOrchestrator', 'live', 'http', 'ai', 'transcode'] as const;
export type Section = (typeof SECTIONS)[number];

interface Spec<T> {
  type: string;
  help: string;
  parse: Parser<T>;
  secret?: boolean;
}

function flagName(path: readonly [string] | readonly [string, string]): string {
  return path.length === 1 ? path[0] : `${path[0]}${path[1][0].toUpperCase()}${path[1].slice(1)}`;
}

function def<T>(
  path: readonly [string] | readonly [string, string],
  dflt: Raw | undefined,
  spec: Spec<T>,
): KeyDef<T> {
  const flag = flagName(path);
  return {
    flag,
    yaml: path,
    env: `LP_${flag.toUpperCase()}`,
    type: spec.type,
    default: dflt,
    help: spec.help,
    secret: spec.secret ?? false,
    parse: spec.parse,
  };
}

/** A key with a built-in default: always has a value. */
function req<T>(path: readonly [string] | readonly [string, string], dflt: Raw, spec: Spec<T>): KeyDef<T> {
  return def(path, dflt, spec);
}

/** A key that may be unset; an empty value also means unset. */
function opt<T>(path: readonly [string] | readonly [string, string], spec: Spec<T>): KeyDef<T | undefined> {
  return def(path, undefined, { ...spec, parse: optional(spec.parse) });
}

function absPath(s: string, cwd: string): string {
  return isAbsolute(s) ? s : resolve(cwd, s);
}

const existingFile: Parser<string> = (raw, ctx) => {
  const s = string(raw);
  const p = absPath(s, ctx.cwd);
  let isFile = false;
  try {
    isFile = statSync(p).isFile();
  } catch {
    throw new Invalid(p === s ? 'file not found' : `file not found (looked for ${p})`);
  }
  if (!isFile) throw new Invalid('is not a regular file');
  return p;
};

const path: Parser<string> = (raw, ctx) => absPath(string(raw), ctx.cwd);

/** go-livepeer's -maxPricePerCapability: the JSON itself, or the path of a file holding it. */
const capabilityPrices: Parser<CapabilityPrices> = (raw, ctx) => {
  const s = string(raw);
  if (s.startsWith('{')) return { source: 'inline JSON', entries: parseCapabilityPrices(s) };
  const file = existingFile(raw, ctx);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new Invalid(`names a file that cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  if (text.trim() === '') throw new Invalid(`names an empty file (${file})`);
  try {
    return { source: file, entries: parseCapabilityPrices(text) };
  } catch (err) {
    if (err instanceof Invalid) throw new Invalid(`${file}: ${err.message}`);
    throw err;
  }
};

/** go-livepeer's -transcodingOptions: preset names (P240p30fps16x9,...), or the path of a JSON file of profiles. */
const transcodingOptions: Parser<{ source: string; profiles: TranscodeProfile[] }> = (raw, ctx) => {
  const s = string(raw).trim();
  const p = absPath(s, ctx.cwd);
  let isFile = false;
  try {
    isFile = statSync(p).isFile();
  } catch {
    // not a file: preset names
  }
  try {
    if (isFile) {
      const text = readFileSync(p, 'utf8');
      if (text.trim() === '') throw new Invalid(`names an empty file (${p})`);
      try {
        return { source: p, profiles: parseJsonProfiles(text) };
      } catch (err) {
        if (err instanceof ProfileError) throw new Invalid(`${p}: ${err.message}`);
        throw err;
      }
    }
    if (/[/\\]|\.json$/i.test(s)) throw new Invalid(`file not found (looked for ${p})`);
    return { source: 'presets', profiles: parsePresetNames(s) };
  } catch (err) {
    if (err instanceof ProfileError) throw new Invalid(err.message);
    throw err;
  }
};

/** go-livepeer semantics: the password itself, or the path of a file holding it (trimmed). */
const password: Parser<Secret> = (raw, ctx) => {
  const s = scalar(raw);
  const p = absPath(s, ctx.cwd);
  let isFile = false;
  try {
    isFile = statSync(p).isFile();
  } catch {
    // not a file: the value is the password itself
  }
  if (!isFile) return new Secret(s);
  try {
    return new Secret(readFileSync(p, 'utf8').trim());
  } catch (err) {
    throw new Invalid(`names a file that cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
};

const secret: Parser<Secret> = (raw) => new Secret(scalar(raw));

/** go-livepeer's header flags: 'Name:value,Name2:value2' (kept secret: they often carry tokens). */
const headerMap: Parser<Secret> = (raw) => {
  const text = scalar(raw);
  if (!text.split(',').some((item) => item.indexOf(':') > 0)) {
    throw new Invalid("must be 'Name:value' pairs separated by commas");
  }
  return new Secret(text);
};

/** A host name or host:port, no scheme or path (go-livepeer builds https://{gatewayHost}/... from it). */
const gatewayHostName: Parser<string> = (raw) => {
  const s = scalar(raw).trim();
  if (!/^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$/.test(s)) {
    throw new Invalid('must be a host name or host:port, without scheme or path');
  }
  return s;
};

/** A socket address to bind: an IP literal (no host name), `:port` for every IPv4 interface. */
const ipListenAddr: Parser<ListenAddr> = (raw) => {
  const addr = listenAddrOrFreePort(raw);
  if (isIP(addr.host) === 0)
    throw new Invalid('must be an IP address and port (ip:port, [ipv6]:port or :port)');
  return addr;
};

const ipAddress = (s: string): string => {
  const ip = s.trim();
  if (isIP(ip) === 0) throw new Invalid('must be IP addresses', ip);
  return ip;
};

/**
 * go-livepeer's `'Name:value,Name2:value2'` header flags, kept secret (they carry tokens): every
 * comma-separated item must be `Name:value`.
 */
const headerList: Parser<Secret> = (raw) => {
  const s = scalar(raw);
  for (const item of s.split(',')) {
    const colon = item.indexOf(':');
    if (
      colon <= 0 ||
      item.slice(0, colon).trim() === '' ||
      !/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(item.slice(0, colon).trim())
    ) {
      throw new Invalid(
        "must be 'Name:value' pairs separated by commas (Authorization:Bearer TOKEN,X-Tenant:acme)",
      );
    }
  }
  return new Secret(s);
};

/** A remote signer's base URL; https:// is assumed without a scheme, as go-livepeer does. */
const signerUrl: Parser<string> = (raw) => {
  const s = scalar(raw);
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(s) ? s : `https://${s}`;
  let u: URL;
  try {
    u = new URL(withScheme);
  } catch {
    throw new Invalid('must be a URL (http://host:port or https://host:port)');
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    throw new Invalid('must be an http:// or https:// URL');
  // Every route is an absolute path on the signer (go-livepeer resolves them that way).
  return u.origin;
};

const wei = bigint({ min: 0n });
const positiveBig = bigint({ min: 1n });
const ms = duration({ min: 1 });

export const NETWORKS = ['offchain', 'arbitrum-one-mainnet'] as const;

/** Every key, in usage()/default.yaml order. */
export const K = {
  httpAddr: req(['httpAddr'], '127.0.0.1:8935', {
    type: 'host:port',
    help: 'Address the gateway HTTP server listens on; ":port" listens on all interfaces',
    parse: listenAddr,
  }),
  orchAddr: req(['orchAddr'], '', {
    type: 'list',
    help: 'Comma-separated orchestrator addresses (host:port or https://host:port). Empty: start the embedded local orchestrator',
    parse: list(orchUrl),
  }),
  orchWebhookUrl: opt(['orchWebhookUrl'], {
    type: 'url',
    help: 'Orchestrator discovery webhook: GET returns a JSON array [{"address":"https://host:port"}] of the orchestrators to use (go-livepeer\'s format)',
    parse: url(['http', 'https']),
  }),
  orchWebhookRefreshInterval: req(['orchWebhookRefreshInterval'], '1m', {
    type: 'duration',
    help: 'How often to ask -orchWebhookUrl again; a bad answer keeps the previous list',
    parse: ms,
  }),
  network: req(['network'], 'offchain', {
    type: 'string',
    help: `Network to use: ${NETWORKS.join(' or ')}`,
    parse: oneOf(NETWORKS),
  }),
  ethUrl: opt(['ethUrl'], {
    type: 'url',
    help: 'Ethereum (Arbitrum) JSON-RPC URL; required unless -network=offchain',
    parse: url(['http', 'https', 'ws', 'wss']),
  }),
  ethKeystorePath: opt(['ethKeystorePath'], {
    type: 'path',
    help: 'Path to the Ethereum keystore directory or key file',
    parse: path,
  }),
  ethPassword: opt(['ethPassword'], {
    type: 'string',
    help: 'Password for the Ethereum account, or path to a file holding it',
    parse: password,
    secret: true,
  }),
  ethController: opt(['ethController'], {
    type: 'address',
    help: "Livepeer Controller contract address; default: the network's",
    parse: ethAddress,
  }),
  remoteSigner: req(['remoteSigner'], 'false', {
    type: 'bool',
    help: "Run as a remote signer instead of a gateway: hold the keystore account and sign tickets for keyless gateways (-remoteSignerUrl); needs -network, -ethUrl, -ethKeystorePath and -ethPassword; serves go-livepeer's signer routes on -httpAddr",
    parse: bool,
  }),
  remoteSignerUrl: opt(['remoteSignerUrl'], {
    type: 'url',
    help: "Gateway: pay live streams through this remote signer (lp-gateway's or go-livepeer's -remoteSigner) and hold no key; https:// when no scheme is given. Batch AI and transcoding are refused (503): go-livepeer pays only live video through a signer",
    parse: signerUrl,
  }),
  remoteSignerHeaders: opt(['remoteSignerHeaders'], {
    type: 'headers',
    help: "Gateway: headers on every call to -remoteSignerUrl, 'Name:value,Name2:value2' (e.g. Authorization:Bearer TOKEN)",
    parse: headerList,
    secret: true,
  }),
  remoteSignerAuthToken: opt(['remoteSignerAuthToken'], {
    type: 'string',
    help: 'Remote signer: the bearer token every call must carry (Authorization: Bearer TOKEN; gateways set it with -remoteSignerHeaders); empty: none',
    parse: secret,
    secret: true,
  }),
  remoteSignerWebhookUrl: opt(['remoteSignerWebhookUrl'], {
    type: 'url',
    help: "Remote signer: a webhook asked to authorise each payment (go-livepeer's format: POST {headers, state}, answer {status, reason, expiry, auth_id, maxPrice})",
    parse: url(['http', 'https']),
  }),
  remoteSignerWebhookHeaders: opt(['remoteSignerWebhookHeaders'], {
    type: 'headers',
    help: "Remote signer: headers on every webhook call, 'Name:value,Name2:value2'",
    parse: headerList,
    secret: true,
  }),
  remoteSignerAllowNoAuth: req(['remoteSignerAllowNoAuth'], 'false', {
    type: 'bool',
    help: 'Remote signer: listen on a non-loopback -httpAddr with neither -remoteSignerAuthToken nor -remoteSignerWebhookUrl (anyone who reaches it can spend the deposit)',
    parse: bool,
  }),
  remoteSignerStateTtl: req(['remoteSignerStateTtl'], '1h', {
    type: 'duration',
    help: 'Remote signer: a payment session unused for this long is forgotten, and a payment state it does not know is refused once billed longer ago than this (replay protection)',
    parse: ms,
  }),
  remoteDiscovery: req(['remoteDiscovery'], 'false', {
    type: 'bool',
    help: 'Remote signer: also serve GET /discover-orchestrators (orchestrators from -orchWebhookUrl, else -orchAddr, else the chain, priced within the ceilings)',
    parse: bool,
  }),
  redisUrl: opt(['redisUrl'], {
    type: 'url',
    help: 'Scale-out: share the stream registry, orchestrator suspensions and per-account limits with the other gateway nodes through this Redis (redis://[user:password@]host:port[/db]); empty: everything stays in this process (docs/scale-out.md)',
    parse: (raw, ctx) => new Secret(url(['redis', 'rediss'])(raw, ctx)),
    secret: true,
  }),
  clusterNodeUrl: opt(['clusterNodeUrl'], {
    type: 'url',
    help: "Scale-out: this node's own base URL (http://10.0.0.5:8935), where other nodes send requests for its streams and WHEP viewers are redirected (307); default: http://-httpAddr (which must then not be 0.0.0.0)",
    parse: (raw, ctx) => url(['http', 'https'])(raw, ctx).replace(/\/+$/, ''),
  }),
  clusterLeaseTtl: req(['clusterLeaseTtl'], '10s', {
    type: 'duration',
    help: "Scale-out: a node's claim on its streams lasts this long unless renewed (every third of it); a node that dies loses its streams after at most this long",
    parse: duration({ min: 1000 }),
  }),
  maxPricePerUnit: req(['maxPricePerUnit'], '0', {
    type: 'wei',
    help: 'Maximum price (wei per pixelsPerUnit pixels) to pay an orchestrator; 0 = no limit',
    parse: wei,
  }),
  pixelsPerUnit: req(['pixelsPerUnit'], '1', {
    type: 'int',
    help: 'Number of pixels that maxPricePerUnit is the price of',
    parse: positiveBig,
  }),
  maxPricePerCapability: opt(['maxPricePerCapability'], {
    type: 'path|json',
    help: 'Maximum prices per capability/model, overriding maxPricePerUnit: a JSON file, or the JSON itself, in go-livepeer\'s format {"capabilities_prices":[{"pipeline","model_id","price_per_unit","pixels_per_unit","currency"}]}',
    parse: capabilityPrices,
  }),
  maxTicketEV: req(['maxTicketEV'], '3000000000000', {
    type: 'wei',
    help: 'Maximum acceptable expected value of one ticket',
    parse: positiveBig,
  }),
  maxTotalEV: req(['maxTotalEV'], '20000000000000', {
    type: 'wei',
    help: 'Maximum acceptable expected value of one payment (all its tickets); >= maxTicketEV',
    parse: positiveBig,
  }),
  depositMultiplier: req(['depositMultiplier'], '1', {
    type: 'int',
    help: 'Deposit multiplier used to determine the maximum acceptable ticket face value',
    parse: int({ min: 1 }),
  }),
  ticketEV: req(['ticketEV'], '8000000000', {
    type: 'wei',
    help: 'Local orchestrator on chain (npm run orchestrator -network ...): expected value of each ticket it asks for',
    parse: positiveBig,
  }),
  livePaymentInterval: req(['livePaymentInterval'], '5s', {
    type: 'duration',
    help: 'How often to pay the orchestrator during a live stream',
    parse: ms,
  }),
  transcodingOptions: req(['transcodingOptions'], 'P240p30fps16x9,P360p30fps16x9', {
    type: 'list|path',
    help: "Renditions of pushed segments (PUT /live/{id}/{seq}.ts): comma-separated profile names (P720p30fps16x9, P360p30fps16x9, P240p30fps16x9, ...) or the path of a JSON file of profiles in go-livepeer's format",
    parse: transcodingOptions,
  }),
  orchSecret: opt(['orchSecret'], {
    type: 'string',
    help: 'Shared secret for authenticating with orchestrators',
    parse: secret,
    secret: true,
  }),
  logFormat: req(['logFormat'], 'auto', {
    type: 'string',
    help: 'Log lines: json (one JSON object per line), pretty (one readable line per event), auto = pretty when stdout is a terminal, else json',
    parse: oneOf(['auto', 'json', 'pretty'] as const),
  }),
  v: req(['v'], '3', {
    type: 'int',
    help: 'Log verbosity 0..6: 0 warn, 1-3 info, 4-5 debug, 6 trace',
    parse: int({ min: 0, max: 6 }),
  }),
  grpcTimeoutMs: req(['grpcTimeoutMs'], '3000', {
    type: 'duration',
    help: 'Timeout for each gRPC call to an orchestrator (and for each -orchWebhookUrl request)',
    parse: ms,
  }),
  discoveryConcurrency: req(['discoveryConcurrency'], '8', {
    type: 'int',
    help: 'Maximum GetOrchestrator calls in flight at once when refreshing what orchestrators offer',
    parse: int({ min: 1, max: 1000 }),
  }),
  orchInfoMaxAge: req(['orchInfoMaxAge'], '60s', {
    type: 'duration',
    help: "Refresh an orchestrator's GetOrchestrator answer (models, price, latency) in the background once it is this old",
    parse: ms,
  }),

  gatewayHost: opt(['gatewayHost'], {
    type: 'host',
    help: "This gateway's public host (go-livepeer's -gatewayHost): gateway_host and the URLs the auth webhook gets, and `gateway` in stream events",
    parse: gatewayHostName,
  }),
  rtmpAddr: req(['rtmpAddr'], '127.0.0.1:1935', {
    type: 'host:port',
    help: 'RTMP ingest for live streams (rtmp://HOST/live/STREAM, as OBS and ffmpeg publish); ":port" listens on loopback as go-livepeer; port 0 picks one; "off" = no RTMP',
    parse: (raw) => {
      const s = scalar(raw);
      if (s === 'off') return undefined;
      return listenAddrOrFreePort(s.startsWith(':') ? `127.0.0.1${s}` : s);
    },
  }),
  liveRtmpOutput: opt(['liveRtmpOutput'], {
    type: 'url',
    help: "Push every live stream's processed output (with audio, as AAC) to this RTMP URL unless the stream has its own (the auth webhook's rtmp_output_url, the rtmpOutput query); reconnects with backoff",
    parse: (raw) => {
      const s = scalar(raw);
      if (!/^rtmps?:\/\/[^\s/]\S*$/i.test(s)) throw new Invalid('must be an rtmp:// or rtmps:// URL');
      return s;
    },
    secret: true,
  }),
  liveAIAuthWebhookUrl: opt(['liveAIAuthWebhookUrl'], {
    type: 'url',
    help: "go-livepeer's live AI auth webhook: POSTed before each WHIP stream starts; its answer allows it (pipeline, params, stream id, RTMP output) or refuses it (401/403 with its reason); unreachable or slow = refused (503)",
    parse: url(['http', 'https']),
  }),
  liveAIAuthApiKey: opt(['liveAIAuthApiKey'], {
    type: 'string',
    help: 'Sent to liveAIAuthWebhookUrl in the x-api-key and Authorization headers (verbatim, as go-livepeer sends it)',
    parse: secret,
    secret: true,
  }),
  liveAIAuthWebhookTimeout: req(['liveAIAuthWebhookTimeout'], '5s', {
    type: 'duration',
    help: 'How long liveAIAuthWebhookUrl may take to answer before the stream is refused (503); go-livepeer waits forever',
    parse: ms,
  }),
  liveAIHeartbeatURL: opt(['liveAIHeartbeatURL'], {
    type: 'url',
    help: 'go-livepeer\'s live AI heartbeat: every liveAIHeartbeatInterval the gateway POSTs {"ids": [live stream ids]} here and ends at once the streams the answer lists in "terminatedStreamIds"',
    parse: url(['http', 'https']),
  }),
  liveAIHeartbeatHeaders: opt(['liveAIHeartbeatHeaders'], {
    type: 'headers',
    help: "Headers sent with each heartbeat, go-livepeer's format: 'Name:value,Name2:value2'",
    parse: headerMap,
    secret: true,
  }),
  liveAIHeartbeatInterval: req(['liveAIHeartbeatInterval'], '5s', {
    type: 'duration',
    help: 'How often the heartbeat is sent (the first one interval after start)',
    parse: ms,
  }),
  liveAIEventsWebhookUrl: opt(['liveAIEventsWebhookUrl'], {
    type: 'url',
    help: "Where the stream events go (go-livepeer sends them to Kafka): POSTed as JSON arrays of go-livepeer's envelopes {id,type,timestamp,gateway,data}, batched, retried with backoff, from a bounded queue",
    parse: url(['http', 'https']),
  }),
  liveAIEventsWebhookHeaders: opt(['liveAIEventsWebhookHeaders'], {
    type: 'headers',
    help: "Headers sent with each events POST: 'Name:value,Name2:value2'",
    parse: headerMap,
    secret: true,
  }),
  shutdownTimeout: req(['shutdownTimeout'], '30s', {
    type: 'duration',
    help: 'On SIGTERM/SIGINT: new streams and jobs get 503, requests under way may finish, live streams end, events are flushed; past this the process exits anyway (a second signal: at once)',
    parse: ms,
  }),

  localOrchestratorServiceAddr: req(['localOrchestrator', 'serviceAddr'], '127.0.0.1:8936', {
    type: 'host:port',
    help: 'Address the embedded local orchestrator listens on; port 0 picks a free port',
    parse: listenAddrOrFreePort,
  }),
  localOrchestratorModels: req(['localOrchestrator', 'models'], ['passthrough', 'invert', 'edges'], {
    type: 'list',
    help: 'Comma-separated model ids the local orchestrator advertises; each is also an effect name',
    parse: list(modelId),
  }),
  localOrchestratorPricePerUnit: req(['localOrchestrator', 'pricePerUnit'], '0', {
    type: 'wei',
    help: 'Price (wei per pixelsPerUnit pixels) the local orchestrator charges',
    parse: wei,
  }),
  localOrchestratorPixelsPerUnit: req(['localOrchestrator', 'pixelsPerUnit'], '1', {
    type: 'int',
    help: 'Number of pixels that the local orchestrator pricePerUnit is the price of',
    parse: positiveBig,
  }),
  localOrchestratorCapacity: req(['localOrchestrator', 'capacity'], '8', {
    type: 'int',
    help: 'Maximum concurrent streams the local orchestrator accepts',
    parse: int({ min: 1 }),
  }),
  localOrchestratorSecret: opt(['localOrchestrator', 'secret'], {
    type: 'string',
    help: 'Shared secret between the gateway and the local orchestrator; random when empty',
    parse: secret,
    secret: true,
  }),
  localOrchestratorFault: req(['localOrchestrator', 'fault'], 'none', {
    type: 'fault',
    help: 'For tests and demos: make the local orchestrator fail: none, fail-start, hang, stall-output-after:<duration>, exit-after:<duration>, events-error-after:<duration>',
    parse: orchestratorFault,
  }),
  localOrchestratorWarmup: req(['localOrchestrator', 'warmup'], '0s', {
    type: 'duration',
    help: 'For tests and demos, as an ai-runner pipeline loading its model: each live job reports LOADING on its events channel and sends no output for this long after it starts, then ONLINE (0: at once)',
    parse: duration({ min: 0 }),
  }),
  localOrchestratorOutputSize: opt(['localOrchestrator', 'outputSize'], {
    type: 'WxH',
    help: "For tests and demos: live output at this size (scaled to cover, centre-cropped, as ai-runner's 512x512); empty: the input's size",
    parse: (raw) => frameSize(raw)!,
  }),
  localOrchestratorOutputFps: opt(['localOrchestrator', 'outputFps'], {
    type: 'int',
    help: "For tests and demos: live output at this frame rate (as a model slower than the input); empty: the input's rate",
    parse: int({ min: 1, max: 120 }),
  }),
  localOrchestratorRestarts: req(['localOrchestrator', 'restarts'], 'none', {
    type: 'restarts',
    help: 'For tests and demos, as an ai-runner pipeline restarting: none, after:<duration> (once, that long after a live job starts) or every:<duration>; output stops for restartGap, the status goes LOADING with restart_count + 1, then output resumes',
    parse: pipelineRestarts,
  }),
  localOrchestratorRestartGap: req(['localOrchestrator', 'restartGap'], '3s', {
    type: 'duration',
    help: 'How long live output stops at each pipeline restart (localOrchestrator.restarts)',
    parse: duration({ min: 1 }),
  }),
  localOrchestratorEventForm: req(['localOrchestrator', 'eventForm'], 'plain', {
    type: 'plain|envelope',
    help: 'Live events as plain JSON ({"type": ...}) or in ai-runner\'s envelope ({"event": {...}, "queue_event_type": "ai_stream_events"})',
    parse: oneOf(['plain', 'envelope'] as const),
  }),
  localOrchestratorTextToImageModels: req(
    ['localOrchestrator', 'textToImageModels'],
    ['stabilityai/sdxl-turbo', 'ByteDance/SDXL-Lightning', 'SG161222/RealVisXL_V4.0_Lightning'],
    {
      type: 'list',
      help: 'Model ids the local orchestrator serves text-to-image for (a CPU stand-in); empty: not offered',
      parse: list(modelId),
    },
  ),
  localOrchestratorImageToImageModels: req(
    ['localOrchestrator', 'imageToImageModels'],
    ['stabilityai/sdxl-turbo', 'timbrooks/instruct-pix2pix'],
    {
      type: 'list',
      help: 'Model ids the local orchestrator serves image-to-image for (a CPU stand-in); empty: not offered',
      parse: list(modelId),
    },
  ),
  localOrchestratorUpscaleModels: req(
    ['localOrchestrator', 'upscaleModels'],
    ['stabilityai/stable-diffusion-x4-upscaler'],
    {
      type: 'list',
      help: 'Model ids the local orchestrator serves upscale (4x) for (a CPU stand-in); empty: not offered',
      parse: list(modelId),
    },
  ),
  localOrchestratorAiCapacity: req(['localOrchestrator', 'aiCapacity'], '4', {
    type: 'int',
    help: 'Concurrent batch AI requests the local orchestrator takes per pipeline and model',
    parse: int({ min: 1 }),
  }),

  liveDefaultModel: req(['live', 'defaultModel'], 'invert', {
    type: 'string',
    help: 'Model used for a live stream that does not ask for one',
    parse: (raw) => modelId(string(raw)),
  }),
  liveMinSegmentDurationMs: req(['live', 'minSegmentDurationMs'], '1000', {
    type: 'duration',
    help: 'Minimum duration of a media segment sent to the orchestrator',
    parse: ms,
  }),
  livePliIntervalMs: req(['live', 'pliIntervalMs'], '2000', {
    type: 'duration',
    help: 'Minimum interval between keyframe requests (RTCP PLI) to a WebRTC publisher',
    parse: ms,
  }),
  liveMaxViewers: req(['live', 'maxViewers'], '100', {
    type: 'int',
    help: 'Maximum WHEP viewers per stream',
    parse: int({ min: 1 }),
  }),
  liveMaxStreams: req(['live', 'maxStreams'], '16', {
    type: 'int',
    help: 'Maximum concurrent live streams',
    parse: int({ min: 1 }),
  }),
  liveAccountMaxStreams: req(['live', 'accountMaxStreams'], '0', {
    type: 'int',
    help: 'Maximum live streams of one account (the Bearer token a stream was published with; streams published without one share one account), across every node on -redisUrl; 0 = no limit',
    parse: int({ min: 0 }),
  }),
  liveAccountMaxViewers: req(['live', 'accountMaxViewers'], '0', {
    type: 'int',
    help: "Maximum WHEP viewers of all of one account's streams, across every node on -redisUrl; 0 = no limit",
    parse: int({ min: 0 }),
  }),
  liveIngestTimeoutMs: req(['live', 'ingestTimeoutMs'], '10000', {
    type: 'duration',
    help: 'End a stream when no input media arrives for this long',
    parse: ms,
  }),
  liveFirstOutputTimeoutMs: req(['live', 'firstOutputTimeoutMs'], '30000', {
    type: 'duration',
    help: 'Replace an orchestrator whose job sends no output this long after its first input (go-livepeer waits 30 s); extended while it reports LOADING',
    parse: ms,
  }),
  liveNoOutputTimeoutMs: req(['live', 'noOutputTimeoutMs'], '10000', {
    type: 'duration',
    help: 'Replace an orchestrator whose output stops this long while input flows (after its first output)',
    parse: ms,
  }),
  liveMaxSwaps: req(['live', 'maxSwaps'], '2', {
    type: 'int',
    help: "Orchestrator swaps allowed per stream within liveSwapWindowMs (go-livepeer's 2 per 3 min); past it the stream stays where it is, or ends if it has no orchestrator",
    parse: int({ min: 0 }),
  }),
  liveSwapWindowMs: req(['live', 'swapWindowMs'], '180000', {
    type: 'duration',
    help: 'The window liveMaxSwaps counts swaps in',
    parse: ms,
  }),
  liveNoOrchestratorGraceMs: req(['live', 'noOrchestratorGraceMs'], '30000', {
    type: 'duration',
    help: 'With no orchestrator available, keep the publisher connected this long while retrying',
    parse: ms,
  }),
  liveWhipAuthToken: opt(['live', 'whipAuthToken'], {
    type: 'string',
    help: 'Bearer token WHIP publishers must send; empty = no authentication',
    parse: secret,
    secret: true,
  }),
  liveWhepAuthToken: opt(['live', 'whepAuthToken'], {
    type: 'string',
    help: 'Bearer token WHEP viewers must send (to start, PATCH and DELETE their sessions); empty = anyone may watch',
    parse: secret,
    secret: true,
  }),
  liveOperatorToken: opt(['live', 'operatorToken'], {
    type: 'string',
    help: "The operator's Bearer token: GET /live/events (stream events as SSE; off when empty), the status of any stream, and protected streams in /live/streams",
    parse: secret,
    secret: true,
  }),
  liveWebrtcUdpAddr: opt(['live', 'webrtcUdpAddr'], {
    type: 'ip:port',
    help: 'One UDP port for the WebRTC (ICE) traffic of every peer, e.g. :8189; empty = a UDP port per peer',
    parse: ipListenAddr,
  }),
  liveWebrtcTcpAddr: opt(['live', 'webrtcTcpAddr'], {
    type: 'ip:port',
    help: 'One TCP port for ICE-TCP (passive candidates) of every peer, e.g. :8189; empty = no ICE-TCP',
    parse: ipListenAddr,
  }),
  liveNatIp: req(['live', 'natIp'], [], {
    type: 'list',
    help: "Public IP address(es) announced in WebRTC candidates instead of the machine's own (1:1 NAT, container port mapping)",
    parse: list(ipAddress),
  }),
  livePublicUrl: opt(['live', 'publicUrl'], {
    type: 'url',
    help: "Base of the WHEP URL in WHIP's Livepeer-Playback-URL header (https://gw.example.com); empty = the request's own scheme and Host",
    parse: url(['http', 'https']),
  }),
  liveIceServers: req(['live', 'iceServers'], [], {
    type: 'list',
    help: 'ICE servers for WebRTC: JSON [{"urls":..,"username":..,"credential":..}] or comma-separated stun: URLs; empty = none',
    parse: iceServers,
  }),

  httpBodyBudgetBytes: opt(['http', 'bodyBudgetBytes'], {
    type: 'int',
    help: 'Request bodies being read at once, in bytes, across all routes; a request past it gets 503 with Retry-After; empty = an eighth of the memory, 64 MiB to 2 GiB',
    parse: int({ min: 1024 }),
  }),
  httpBodyLimitBytes: req(['http', 'bodyLimitBytes'], '1048576', {
    type: 'int',
    help: 'Maximum HTTP request body size in bytes',
    parse: int({ min: 1 }),
  }),

  aiProcessingRetryTimeout: req(['ai', 'processingRetryTimeout'], '30s', {
    type: 'duration',
    help: "Batch AI: no new orchestrator is tried once a request is this old (go-livepeer's -aiProcessingRetryTimeout)",
    parse: ms,
  }),
  aiMaxTries: req(['ai', 'maxTries'], '3', {
    type: 'int',
    help: 'Batch AI: orchestrators tried per request, at most',
    parse: int({ min: 1, max: 20 }),
  }),
  aiTryTimeout: req(['ai', 'tryTimeout'], '15s', {
    type: 'duration',
    help: 'Batch AI: how long one orchestrator may take to start answering (response headers; an LLM stream: also between events) before the next is tried; keep it under processingRetryTimeout',
    parse: ms,
  }),
  aiReplyTimeout: req(['ai', 'replyTimeout'], '5m', {
    type: 'duration',
    help: 'Batch AI: once an orchestrator started answering, how long the whole reply (and each result file download) may take',
    parse: ms,
  }),
  aiMaxInFlight: req(['ai', 'maxInFlight'], '64', {
    type: 'int',
    help: 'Batch AI: jobs run at once (streams and async image-to-video included); more get 503 with Retry-After',
    parse: int({ min: 1 }),
  }),
  aiBodyLimitBytes: req(['ai', 'bodyLimitBytes'], '52428800', {
    type: 'int',
    help: 'Batch AI: maximum request body (JSON or multipart upload) in bytes; larger gets 413',
    parse: int({ min: 1 }),
  }),
  aiResultDir: opt(['ai', 'resultDir'], {
    type: 'path',
    help: 'Batch AI: directory for result files served at /results; empty = lp-gateway-results in the system temp directory',
    parse: path,
  }),
  aiResultTtl: req(['ai', 'resultTtl'], '1h', {
    type: 'duration',
    help: 'Batch AI: result files are removed once this old',
    parse: ms,
  }),
  aiPublicUrl: opt(['ai', 'publicUrl'], {
    type: 'url',
    help: "Batch AI: base URL of result links (https://gw.example.com); empty = the request's own scheme and Host",
    parse: url(['http', 'https']),
  }),

  transcodeMaxSegmentBytes: req(['transcode', 'maxSegmentBytes'], '67108864', {
    type: 'int',
    help: 'Segment transcoding: largest pushed segment in bytes; larger gets 413',
    parse: int({ min: 1024 }),
  }),
  transcodeMaxInFlight: opt(['transcode', 'maxInFlight'], {
    type: 'int',
    help: 'Segment transcoding: pushes served at once; more get 503 with Retry-After before their body is read; empty = from the memory: a quarter of it over six segments of transcodeMaxSegmentBytes, 2 to 64',
    parse: int({ min: 1 }),
  }),
  transcodeMaxAttempts: req(['transcode', 'maxAttempts'], '3', {
    type: 'int',
    help: "Segment transcoding: orchestrators tried per segment before the push fails (go-livepeer's MaxAttempts)",
    parse: int({ min: 1, max: 20 }),
  }),
  transcodeHlsWindowSegments: req(['transcode', 'hlsWindowSegments'], '10', {
    type: 'int',
    help: 'Segment transcoding: segments listed and kept per rendition in the HLS playlists at /stream/',
    parse: int({ min: 1, max: 1000 }),
  }),
  transcodeStreamIdleTimeout: req(['transcode', 'streamIdleTimeout'], '60s', {
    type: 'duration',
    help: 'Segment transcoding: a stream with no push for this long is dropped with its HLS playlists',
    parse: ms,
  }),
  transcodeHlsMaxStreams: req(['transcode', 'hlsMaxStreams'], '100', {
    type: 'int',
    help: 'Segment transcoding: streams kept for HLS at once; the least recently pushed goes first',
    parse: int({ min: 1 }),
  }),
} as const;

// biome-ignore lint/suspicious/noExplicitAny: a heterogeneous table of keys
export type AnyKeyDef = KeyDef<any>;

export const KEYS: readonly AnyKeyDef[] = Object.values(K);

export const BY_FLAG: ReadonlyMap<string, AnyKeyDef> = new Map(KEYS.map((k) => [k.flag, k]));

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length];
}

/** The closest candidate to a misspelt name (case-insensitive, up to 2 edits), if any. */
export function closest(name: string, candidates: Iterable<string>): string | undefined {
  const lower = name.toLowerCase();
  let best: string | undefined;
  let bestD = Math.min(3, Math.ceil(name.length / 3) + 1);
  for (const c of candidates) {
    const d = distance(lower, c.toLowerCase());
    if (d < bestD) {
      best = c;
      bestD = d;
    }
  }
  return best;
}
