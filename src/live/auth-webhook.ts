// go-livepeer's live AI auth webhook (-liveAIAuthWebhookUrl, server/auth.go): before a WHIP
// stream starts, the operator's service is asked whether it may, and answers with the pipeline,
// its params, the stream id and where the output goes. Unlike go-livepeer, the answer is waited
// for before anything is created (a refused publisher gets 401/403, not 201 and a closed peer),
// and the call has a timeout: a webhook that is down, slow or answers garbage refuses (503).
import type { Secret } from '../config/index.ts';
import { LiveError } from './errors.ts';
import { fetchFailure, jsonDepth, readCapped, reasonOf, sanitizeReason } from './operator-http.ts';

/** An answer larger than this is not read (go-livepeer reads any size). */
const MAX_ANSWER_BYTES = 64 * 1024;
/** pipeline_parameters nested deeper than this are refused (they go to the orchestrator as JSON). */
const MAX_PARAMS_DEPTH = 32;
/** A model id as the config accepts one. */
const MODEL_ID = /^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$/;
const MAX_ID_LENGTH = 256;
const MAX_URL_LENGTH = 2048;

export interface AuthWebhookOptions {
  url: string;
  /** Sent verbatim in `x-api-key` and `Authorization` (no "Bearer "), as go-livepeer sends it. */
  apiKey?: Secret;
  timeoutMs: number;
}

/** go-livepeer's AIAuthRequest (server/auth.go), our names. */
export interface AuthRequest {
  stream: string;
  /** `livepeer-whip`: go-livepeer's name for WHIP it terminates itself. */
  type: string;
  /** The request's query, re-encoded as Go's url.Values.Encode() does; omitted when empty. */
  queryParams: string;
  gatewayHost: string;
  whepUrl: string;
  statusUrl: string;
  updateUrl: string;
}

/** What the webhook decided for the stream; absent fields keep the request's own values. */
export interface AuthAnswer {
  rtmpOutputUrl?: string;
  pipeline?: string;
  pipelineId?: string;
  streamId?: string;
  params?: Record<string, unknown>;
}

/**
 * Asks the webhook. Resolves with its answer when it allows the stream; throws a LiveError: 401
 * or 403 with the webhook's reason when it refuses, 503 when it cannot be asked or its answer is
 * not usable (never an open door).
 */
export async function askAuthWebhook(opts: AuthWebhookOptions, req: AuthRequest): Promise<AuthAnswer> {
  const key = opts.apiKey?.reveal() ?? '';
  // go-livepeer's JSON keys, in its order.
  const body = JSON.stringify({
    stream: req.stream,
    stream_key: req.stream,
    type: req.type,
    ...(req.queryParams ? { query_params: req.queryParams } : {}),
    gateway_host: req.gatewayHost,
    whep_url: req.whepUrl,
    status_url: req.statusUrl,
    update_url: req.updateUrl,
  });
  let res: Response;
  try {
    res = await fetch(opts.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': key, authorization: key },
      body,
      signal: AbortSignal.timeout(opts.timeoutMs),
    });
  } catch (err) {
    throw unavailable(`the auth webhook is ${fetchFailure(err, opts.timeoutMs)}`);
  }
  let answer: Buffer | undefined;
  try {
    answer = await readCapped(res, MAX_ANSWER_BYTES);
  } catch (err) {
    throw unavailable(`the auth webhook's answer could not be read (${fetchFailure(err, opts.timeoutMs)})`);
  }
  if (res.status >= 500 || res.status < 200 || (res.status >= 300 && res.status < 400)) {
    throw unavailable(`the auth webhook failed (HTTP ${res.status})`);
  }
  if (res.status >= 400) {
    const reason = answer ? reasonOf(answer) : '';
    const status = res.status === 401 ? 401 : 403;
    throw new LiveError(
      status,
      status === 401 ? 'UNAUTHORIZED' : 'FORBIDDEN',
      `refused by the auth webhook: ${reason || `HTTP ${res.status}, no reason given`}`,
    );
  }
  if (!answer) throw badAnswer(`larger than ${MAX_ANSWER_BYTES} bytes`);
  return parseAnswer(answer);
}

/** The webhook's 2xx body: a JSON object with go-livepeer's keys, each checked. */
export function parseAnswer(body: Buffer): AuthAnswer {
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch {
    throw badAnswer(body.length === 0 ? 'empty' : 'not JSON');
  }
  if (!json || typeof json !== 'object' || Array.isArray(json)) throw badAnswer('not a JSON object');
  const o = json as Record<string, unknown>;
  const answer: AuthAnswer = {};
  const text = (key: string, max: number): string | undefined => {
    const v = o[key];
    if (v === undefined || v === null || v === '') return undefined;
    if (typeof v !== 'string') throw badAnswer(`"${key}" is not a string`);
    if (v.length > max) throw badAnswer(`"${key}" is longer than ${max} characters`);
    // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are refused
    if (/[\x00-\x1f\x7f]/.test(v)) throw badAnswer(`"${key}" has control characters`);
    return v;
  };
  const rtmp = text('rtmp_output_url', MAX_URL_LENGTH);
  if (rtmp !== undefined) {
    if (!/^rtmps?:\/\/[^\s/]/i.test(rtmp))
      throw badAnswer('"rtmp_output_url" is not an rtmp:// or rtmps:// URL');
    answer.rtmpOutputUrl = rtmp;
  }
  const pipeline = text('pipeline', 128);
  if (pipeline !== undefined) {
    if (!MODEL_ID.test(pipeline))
      throw badAnswer(`"pipeline" is not a model id: ${sanitizeReason(pipeline, 60)}`);
    answer.pipeline = pipeline;
  }
  const pipelineId = text('pipeline_id', MAX_ID_LENGTH);
  if (pipelineId !== undefined) answer.pipelineId = pipelineId;
  const streamId = text('stream_id', MAX_ID_LENGTH);
  if (streamId !== undefined) answer.streamId = streamId;
  const params = o.pipeline_parameters;
  if (params !== undefined && params !== null) {
    if (typeof params !== 'object' || Array.isArray(params))
      throw badAnswer('"pipeline_parameters" is not a JSON object');
    if (jsonDepth(params, MAX_PARAMS_DEPTH) > MAX_PARAMS_DEPTH)
      throw badAnswer(`"pipeline_parameters" is nested deeper than ${MAX_PARAMS_DEPTH}`);
    const p = params as Record<string, unknown>;
    if (Object.keys(p).length > 0) {
      // go-livepeer: ComfyUI takes its workflow under "prompt".
      answer.params = (answer.pipeline ?? '') === 'comfyui' && !('prompt' in p) ? { prompt: p } : p;
    }
  }
  return answer;
}

/**
 * The query as Go's url.Values.Encode() writes it (go-livepeer sends that): keys sorted, each
 * key's values in order, QueryEscape (space as "+", only A-Z a-z 0-9 - _ . ~ left as they are).
 */
export function goQueryEncode(search: string): string {
  const params = new URLSearchParams(search);
  const keys = [...new Set(params.keys())].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const parts: string[] = [];
  for (const key of keys) {
    for (const value of params.getAll(key)) parts.push(`${goEscape(key)}=${goEscape(value)}`);
  }
  return parts.join('&');
}

function goEscape(s: string): string {
  return encodeURIComponent(s)
    .replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
    .replace(/%20/g, '+');
}

function unavailable(message: string): LiveError {
  return new LiveError(503, 'AUTH_UNAVAILABLE', `${message}; the stream is refused until it answers`);
}

function badAnswer(why: string): LiveError {
  return new LiveError(503, 'AUTH_UNAVAILABLE', `the auth webhook's answer is not usable: ${why}`);
}
