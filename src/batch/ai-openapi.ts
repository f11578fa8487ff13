// The gateway's own OpenAPI 3.1 document (GET /openapi.json): every REST route it serves, with
// the batch AI request and reply schemas of ai-runner's gateway.openapi.yaml.
import { type AiPipeline, openapiSchema, PIPELINES, type Schema } from './ai-pipelines.ts';

/** Response headers every batch AI answer carries (also on errors once an orchestrator was tried). */
export const BATCH_HEADERS = {
  orchestrator: 'Livepeer-Orchestrator',
  tries: 'Livepeer-Tries',
  requestId: 'Livepeer-Request-Id',
  fee: 'Livepeer-Fee-Wei',
} as const;

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: Schema) => ({ 'application/json': { schema } });
const error = (description: string) => ({ description, content: json(ref('Error')) });

const attemptHeaders = {
  [BATCH_HEADERS.orchestrator]: {
    description: 'URL of the orchestrator that served the request (the last one tried, on errors).',
    schema: { type: 'string' },
  },
  [BATCH_HEADERS.tries]: {
    description: 'How many orchestrators were tried, this one included.',
    schema: { type: 'integer' },
  },
  [BATCH_HEADERS.requestId]: { description: "The gateway's id for the request.", schema: { type: 'string' } },
  [BATCH_HEADERS.fee]: {
    description: 'Fee paid to the orchestrator that served it, in wei (0 off-chain or when free).',
    schema: { type: 'string' },
  },
};

function pipelineOperation(p: AiPipeline): Schema {
  const content =
    p.body === 'json' ? json(openapiSchema(p)) : { 'multipart/form-data': { schema: openapiSchema(p) } };
  const ok: Schema = {
    description: 'Successful Response',
    headers: attemptHeaders,
    content: json(ref(p.reply)),
  };
  if (p.name === 'llm') {
    (ok.content as Schema)['text/event-stream'] = {
      schema: { type: 'string', description: 'With "stream": true: `data: {LLMResponse chunk}` events.' },
    };
  }
  const responses: Schema = {
    '200': ok,
    '400': error('Bad Request: a missing or invalid field, named in the message'),
    '413': error('Request Entity Too Large: the body is above -aiBodyLimitBytes'),
    '415': error(
      `Unsupported Media Type: send ${p.body === 'json' ? 'application/json' : 'multipart/form-data'}`,
    ),
    '502': error('Bad Gateway: the result files could not be fetched from the orchestrator'),
    '503': error(
      'Service Unavailable: no orchestrator offers the pipeline and model, all tried failed, or the gateway runs its limit of jobs (code BUSY, with Retry-After)',
    ),
  };
  if (p.name === 'image-to-video') {
    responses['202'] = {
      description: 'Accepted (with `Prefer: respond-async`): poll POST /image-to-video/result',
      content: json({
        type: 'object',
        properties: { request_id: { type: 'string' } },
        required: ['request_id'],
      }),
    };
  }
  return {
    post: {
      tags: ['batch AI'],
      summary: p.name,
      description: `${p.summary} Default model: ${p.defaultModel}.`,
      operationId: p.name,
      requestBody: { required: true, content },
      responses,
    },
  };
}

const simple = (tag: string, summary: string, responses: Schema = { '200': { description: 'OK' } }) => ({
  tags: [tag],
  summary,
  responses,
});

const param = (name: string, description: string) => ({
  name,
  in: 'path',
  required: true,
  description,
  schema: { type: 'string' },
});

export function openapiDocument(): Schema {
  const paths: Schema = {};
  for (const p of Object.values(PIPELINES)) paths[`/${p.name}`] = pipelineOperation(p);
  paths['/image-to-video/result'] = {
    post: {
      tags: ['batch AI'],
      summary: 'Result of an asynchronous image-to-video request',
      requestBody: {
        required: true,
        content: json({
          type: 'object',
          required: ['request_id'],
          properties: { request_id: { type: 'string' } },
        }),
      },
      responses: {
        '200': { description: 'Complete', content: json(ref('ImageToVideoResult')) },
        '202': { description: 'Still processing', content: json(ref('ImageToVideoResult')) },
        '400': error('invalid request ID'),
      },
    },
  };
  paths['/results/{requestId}/{name}'] = {
    get: {
      ...simple('batch AI', 'A result file (image, video, audio) of a batch request, until it expires', {
        '200': { description: 'The file' },
        '404': error('Unknown or expired'),
      }),
      parameters: [param('requestId', 'Request id'), param('name', 'File name')],
    },
  };
  const stream = param('stream', 'Stream name');
  const live = (method: string, path: string, summary: string, extra: Schema = {}) => {
    paths[path] ??= {};
    const item = paths[path] as Schema;
    item[method] = { ...simple('live video-to-video', summary), parameters: [stream], ...extra };
  };
  live(
    'post',
    '/live/video-to-video/{stream}/whip',
    'Publish a camera (WHIP, RFC 9725): SDP offer in, SDP answer out',
    {
      parameters: [stream, { name: 'model', in: 'query', schema: { type: 'string' } }],
      requestBody: { content: { 'application/sdp': { schema: { type: 'string' } } } },
      responses: { '201': { description: 'SDP answer; Location names the session' } },
    },
  );
  live('delete', '/live/video-to-video/{stream}/whip/{id}', 'Stop publishing', {
    parameters: [stream, param('id', 'WHIP session id')],
  });
  live(
    'post',
    '/live/video-to-video/{stream}/whep',
    'Watch the processed stream (WHEP): SDP offer in, SDP answer out',
    {
      requestBody: { content: { 'application/sdp': { schema: { type: 'string' } } } },
      responses: { '201': { description: 'SDP answer; Location names the session' } },
    },
  );
  live('delete', '/live/video-to-video/{stream}/whep/{id}', 'Stop watching', {
    parameters: [stream, param('id', 'WHEP session id')],
  });
  live('post', '/live/video-to-video/{stream}/update', "Update the running pipeline's parameters (JSON)");
  live('get', '/live/video-to-video/{stream}/status', "A live stream's status");
  paths['/live/streams'] = { get: simple('live video-to-video', 'Every live stream') };
  const manifest = param('manifestId', 'Stream (manifest) id');
  const seq = param('seq', 'Segment sequence number');
  const push = {
    ...simple('transcoding', 'Push a segment (MPEG-TS or MP4) to transcode into the configured profiles', {
      '200': { description: 'With Accept: multipart/mixed, one part per rendition; else empty' },
    }),
    parameters: [
      manifest,
      seq,
      { name: 'Content-Duration', in: 'header', schema: { type: 'integer' }, description: 'Milliseconds' },
      { name: 'Content-Resolution', in: 'header', schema: { type: 'string' }, description: 'WxH' },
    ],
  };
  paths['/live/{manifestId}/{seq}.ts'] = { put: push, post: push };
  paths['/live/{manifestId}/{seq}.mp4'] = { put: push, post: push };
  paths['/stream/{manifestId}.m3u8'] = {
    get: { ...simple('transcoding', 'HLS master playlist of a transcoded stream'), parameters: [manifest] },
  };
  const rendition = param('rendition', 'Rendition (profile) name');
  paths['/stream/{manifestId}/{rendition}.m3u8'] = {
    get: {
      ...simple('transcoding', 'HLS media playlist of one rendition'),
      parameters: [manifest, rendition],
    },
  };
  paths['/stream/{manifestId}/{rendition}/{seq}.ts'] = {
    get: {
      ...simple('transcoding', 'One transcoded segment of a rendition (MPEG-TS)'),
      parameters: [manifest, rendition, seq],
    },
  };
  paths['/orchestrators'] = {
    get: {
      ...simple('gateway', 'Known orchestrators, their state and why'),
      parameters: [{ name: 'model', in: 'query', schema: { type: 'string' } }],
    },
  };
  paths['/healthz'] = { get: simple('gateway', 'Health check') };
  paths['/metrics'] = { get: simple('gateway', 'Prometheus metrics (go-livepeer names)') };
  paths['/openapi.json'] = { get: simple('gateway', 'This document') };

  return {
    openapi: '3.1.0',
    info: {
      title: 'lp-gateway',
      version: '0.1.0',
      description:
        "A self-hosted gateway to the Livepeer network. Batch AI routes take go-livepeer's paths and ai-runner's schemas; every error is JSON {error: {code, message}}.",
    },
    paths,
    components: { schemas: { ...REPLY_SCHEMAS } },
  };
}

/** ai-runner's reply schemas (runner/gateway.openapi.yaml components). */
const REPLY_SCHEMAS: Record<string, Schema> = {
  Error: {
    type: 'object',
    required: ['error'],
    properties: {
      error: {
        type: 'object',
        required: ['code', 'message'],
        properties: { code: { type: 'string' }, message: { type: 'string' } },
      },
    },
  },
  Media: {
    type: 'object',
    required: ['url', 'seed', 'nsfw'],
    properties: { url: { type: 'string' }, seed: { type: 'integer' }, nsfw: { type: 'boolean' } },
  },
  MediaURL: { type: 'object', required: ['url'], properties: { url: { type: 'string' } } },
  ImageResponse: {
    type: 'object',
    required: ['images'],
    properties: { images: { type: 'array', items: ref('Media') } },
  },
  VideoResponse: {
    type: 'object',
    required: ['images'],
    properties: { images: { type: 'array', items: ref('Media') } },
  },
  ImageToVideoResult: {
    type: 'object',
    required: ['status'],
    properties: {
      status: { type: 'string', enum: ['processing', 'complete'] },
      result: {
        type: 'object',
        properties: { images: { type: 'array', items: ref('Media') }, error: ref('Error') },
      },
    },
  },
  AudioResponse: { type: 'object', required: ['audio'], properties: { audio: ref('MediaURL') } },
  Chunk: {
    type: 'object',
    required: ['timestamp', 'text'],
    properties: { timestamp: { type: 'array', items: {} }, text: { type: 'string' } },
  },
  TextResponse: {
    type: 'object',
    required: ['text', 'chunks'],
    properties: { text: { type: 'string' }, chunks: { type: 'array', items: ref('Chunk') } },
  },
  MasksResponse: {
    type: 'object',
    required: ['masks', 'scores', 'logits'],
    properties: { masks: { type: 'string' }, scores: { type: 'string' }, logits: { type: 'string' } },
  },
  ImageToTextResponse: { type: 'object', required: ['text'], properties: { text: { type: 'string' } } },
  LLMMessage: {
    type: 'object',
    required: ['role', 'content'],
    properties: { role: { type: 'string' }, content: { type: 'string' } },
  },
  LLMChoice: {
    type: 'object',
    required: ['index'],
    properties: {
      index: { type: 'integer' },
      finish_reason: { type: 'string', default: '' },
      delta: ref('LLMMessage'),
      message: ref('LLMMessage'),
    },
  },
  LLMTokenUsage: {
    type: 'object',
    required: ['prompt_tokens', 'completion_tokens', 'total_tokens'],
    properties: {
      prompt_tokens: { type: 'integer' },
      completion_tokens: { type: 'integer' },
      total_tokens: { type: 'integer' },
    },
  },
  LLMResponse: {
    type: 'object',
    required: ['id', 'model', 'created', 'usage', 'choices'],
    properties: {
      id: { type: 'string' },
      model: { type: 'string' },
      created: { type: 'integer' },
      usage: ref('LLMTokenUsage'),
      choices: { type: 'array', items: ref('LLMChoice') },
    },
  },
};
