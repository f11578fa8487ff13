// The batch AI pipelines an orchestrator serves (go-livepeer server/ai_http.go), their request
// fields (ai-runner's gateway OpenAPI), and the units each request is billed in.
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Capability } from '../wire/lp-rpc.ts';
import { imageConfig } from './ai-image.ts';

export const AI_PIPELINES = [
  'text-to-image',
  'image-to-image',
  'image-to-video',
  'upscale',
  'audio-to-text',
  'segment-anything-2',
  'llm',
  'image-to-text',
  'text-to-speech',
] as const;
export type AiPipelineName = (typeof AI_PIPELINES)[number];

type FieldType = 'string' | 'integer' | 'number' | 'boolean' | 'file' | 'array';

export interface PipelineSpec {
  readonly capability: number;
  readonly body: 'json' | 'multipart';
  /** `model` for llm (OpenAI style), `model_id` for the others. */
  readonly modelField: 'model_id' | 'model';
  readonly required: readonly string[];
  readonly fields: Readonly<Record<string, FieldType>>;
}

const imageFields = { image: 'file', model_id: 'string' } as const;

/** Field names and types from ai-runner runner/gateway.openapi.yaml. */
export const PIPELINE_SPECS: Readonly<Record<AiPipelineName, PipelineSpec>> = {
  'text-to-image': {
    capability: Capability.TextToImage,
    body: 'json',
    modelField: 'model_id',
    required: ['prompt', 'model_id'],
    fields: {
      model_id: 'string',
      loras: 'string',
      prompt: 'string',
      height: 'integer',
      width: 'integer',
      guidance_scale: 'number',
      negative_prompt: 'string',
      safety_check: 'boolean',
      seed: 'integer',
      num_inference_steps: 'integer',
      num_images_per_prompt: 'integer',
    },
  },
  'image-to-image': {
    capability: Capability.ImageToImage,
    body: 'multipart',
    modelField: 'model_id',
    required: ['prompt', 'image', 'model_id'],
    fields: {
      ...imageFields,
      prompt: 'string',
      loras: 'string',
      strength: 'number',
      guidance_scale: 'number',
      image_guidance_scale: 'number',
      negative_prompt: 'string',
      safety_check: 'boolean',
      seed: 'integer',
      num_inference_steps: 'integer',
      num_images_per_prompt: 'integer',
    },
  },
  'image-to-video': {
    capability: Capability.ImageToVideo,
    body: 'multipart',
    modelField: 'model_id',
    required: ['image', 'model_id'],
    fields: {
      ...imageFields,
      height: 'integer',
      width: 'integer',
      fps: 'integer',
      motion_bucket_id: 'integer',
      noise_aug_strength: 'number',
      safety_check: 'boolean',
      seed: 'integer',
      num_inference_steps: 'integer',
    },
  },
  upscale: {
    capability: Capability.Upscale,
    body: 'multipart',
    modelField: 'model_id',
    required: ['prompt', 'image', 'model_id'],
    fields: {
      ...imageFields,
      prompt: 'string',
      safety_check: 'boolean',
      seed: 'integer',
      num_inference_steps: 'integer',
    },
  },
  'audio-to-text': {
    capability: Capability.AudioToText,
    body: 'multipart',
    modelField: 'model_id',
    required: ['audio', 'model_id'],
    fields: { audio: 'file', model_id: 'string', return_timestamps: 'string' },
  },
  'segment-anything-2': {
    capability: Capability.SegmentAnything2,
    body: 'multipart',
    modelField: 'model_id',
    required: ['image', 'model_id'],
    fields: {
      ...imageFields,
      point_coords: 'string',
      point_labels: 'string',
      box: 'string',
      mask_input: 'string',
      multimask_output: 'boolean',
      return_logits: 'boolean',
      normalize_coords: 'boolean',
    },
  },
  llm: {
    capability: Capability.LLM,
    body: 'json',
    modelField: 'model',
    required: ['messages', 'model'],
    fields: {
      messages: 'array',
      model: 'string',
      temperature: 'number',
      max_tokens: 'integer',
      top_p: 'number',
      top_k: 'integer',
      stream: 'boolean',
    },
  },
  'image-to-text': {
    capability: Capability.ImageToText,
    body: 'multipart',
    modelField: 'model_id',
    required: ['image', 'model_id'],
    fields: { ...imageFields, prompt: 'string' },
  },
  'text-to-speech': {
    capability: Capability.TextToSpeech,
    body: 'json',
    modelField: 'model_id',
    required: ['model_id'],
    fields: { model_id: 'string', text: 'string', description: 'string' },
  },
};

export const CAPABILITY_PIPELINE: ReadonlyMap<number, AiPipelineName> = new Map(
  AI_PIPELINES.map((p) => [PIPELINE_SPECS[p].capability, p]),
);

/** An uploaded file of a multipart request. */
export interface AiFile {
  data: Buffer;
  filename: string;
  contentType: string;
}

/** One batch AI request, decoded and type-checked, as a pipeline handler gets it. */
export interface AiRequest {
  pipeline: AiPipelineName;
  modelId: string;
  /** The JSON body, or the multipart text fields typed by the pipeline's schema. No defaults applied. */
  params: Record<string, unknown>;
  /** Multipart file fields (`image`, `audio`). */
  files: Record<string, AiFile>;
  /** go-livepeer's requestID: names stored results. */
  requestId: string;
  /** Aborted when the client goes away or the orchestrator closes. */
  signal: AbortSignal;
}

export interface AiImage {
  /** PNG bytes. */
  png: Buffer;
  seed: number;
  nsfw: boolean;
}

/**
 * What a pipeline produced. `images` become ai-runner's ImageResponse (data URLs or stored URLs,
 * as go-livepeer answers); `json` is sent as is; `stream` is written as Server-Sent Events, one
 * `data: <json>` per chunk, ending after a chunk whose `choices[0].finish_reason` is set.
 */
export type AiResult =
  | { kind: 'images'; images: AiImage[] }
  | { kind: 'json'; body: unknown }
  | { kind: 'stream'; chunks: AsyncIterable<unknown> };

export interface AiPipelineHandler {
  /** Model ids served (advertised in GetOrchestrator; any other model gets 503). */
  models: readonly string[];
  /** Concurrent requests per model; default: the orchestrator's aiCapacity. */
  capacity?: number;
  run(req: AiRequest): Promise<AiResult>;
}

/**
 * An error the AI runner answers with. go-livepeer's orchestrator turns every runner error into
 * its own 500 `<pipeline> container returned <status>: <msg>` (ai/worker/worker.go).
 */
export class RunnerError extends Error {
  constructor(
    readonly status: 400 | 422 | 500,
    message: string,
  ) {
    super(message);
    this.name = 'RunnerError';
  }
}

/** A request the orchestrator itself refuses before any work: HTTP 400 with this text. */
export class AiBadRequest extends Error {
  readonly statusCode = 400;
}

/** The JSON schema fastify validates a JSON pipeline's body with (types and required fields). */
export function jsonBodySchema(spec: PipelineSpec): Record<string, unknown> {
  const properties = Object.fromEntries(
    Object.entries(spec.fields).map(([name, type]) => [
      name,
      type === 'array' ? { type: 'array', items: { type: 'object' } } : { type },
    ]),
  );
  return { type: 'object', required: [...spec.required], properties };
}

const GO_TRUE = new Set(['1', 't', 'T', 'TRUE', 'true', 'True']);
const GO_FALSE = new Set(['0', 'f', 'F', 'FALSE', 'false', 'False']);

/** Types a multipart form's text fields by the pipeline's schema; AiBadRequest naming the field otherwise. */
export function typeFormFields(spec: PipelineSpec, form: FormData): Record<string, unknown> {
  for (const name of spec.required) {
    if (!form.has(name)) throw new AiBadRequest(`missing required field ${name}`);
  }
  const params: Record<string, unknown> = {};
  for (const [name, type] of Object.entries(spec.fields)) {
    const value = form.get(name);
    if (value === null) continue;
    if (type === 'file') {
      if (typeof value === 'string') throw new AiBadRequest(`field ${name} must be a file`);
      continue;
    }
    if (typeof value !== 'string') throw new AiBadRequest(`field ${name} must be a text field, not a file`);
    params[name] = typedField(name, type, value);
  }
  return params;
}

/** Reads the file fields of a form (after typeFormFields accepted it). */
export async function readFormFiles(spec: PipelineSpec, form: FormData): Promise<Record<string, AiFile>> {
  const files: Record<string, AiFile> = {};
  for (const [name, type] of Object.entries(spec.fields)) {
    if (type !== 'file') continue;
    const value = form.get(name);
    if (value === null || typeof value === 'string') continue;
    files[name] = {
      data: Buffer.from(await value.arrayBuffer()),
      filename: value.name,
      contentType: value.type,
    };
  }
  return files;
}

function typedField(name: string, type: FieldType, value: string): unknown {
  switch (type) {
    case 'integer': {
      if (!/^[+-]?\d+$/.test(value))
        throw new AiBadRequest(`field ${name} must be an integer (got "${value}")`);
      const n = Number(value);
      if (!Number.isSafeInteger(n)) throw new AiBadRequest(`field ${name} is out of range (got "${value}")`);
      return n;
    }
    case 'number': {
      const n = Number(value);
      if (value.trim() === '' || !Number.isFinite(n)) {
        throw new AiBadRequest(`field ${name} must be a number (got "${value}")`);
      }
      return n;
    }
    case 'boolean':
      if (GO_TRUE.has(value)) return true;
      if (GO_FALSE.has(value)) return false;
      throw new AiBadRequest(`field ${name} must be true or false (got "${value}")`);
    default:
      return value;
  }
}

const int = (v: unknown, dflt: number): bigint => BigInt(typeof v === 'number' ? Math.trunc(v) : dflt);

function imagePixels(req: Pick<AiRequest, 'files'>, field = 'image'): bigint {
  const file = req.files[field];
  try {
    const c = imageConfig(file?.data ?? Buffer.alloc(0));
    return BigInt(c.width) * BigInt(c.height);
  } catch (err) {
    throw new AiBadRequest((err as Error).message);
  }
}

/**
 * go-livepeer's outPixels (server/ai_http.go handleAIRequest): what the fee is price × this of.
 * Its defaults, not the runner's: 512×512 for text-to-image, 1024×576×25 frames for image-to-video.
 * AiBadRequest (400) for an image it cannot read, an audio file without a duration, an LLM
 * request without max_tokens.
 */
export async function outputUnits(req: Pick<AiRequest, 'pipeline' | 'params' | 'files'>): Promise<bigint> {
  const p = req.params;
  switch (req.pipeline) {
    case 'text-to-image':
      return int(p.height, 512) * int(p.width, 512) * int(p.num_images_per_prompt, 1);
    case 'image-to-image':
      return imagePixels(req) * int(p.num_images_per_prompt, 1);
    case 'upscale':
    case 'segment-anything-2':
    case 'image-to-text':
      return imagePixels(req);
    case 'image-to-video':
      // stable-video-diffusion-img2vid-xt's frame count.
      return int(p.height, 576) * int(p.width, 1024) * 25n;
    case 'audio-to-text': {
      const seconds = await audioSeconds(req.files.audio?.data ?? Buffer.alloc(0));
      if (seconds <= 0) throw new AiBadRequest('Unable to calculate duration');
      return BigInt(seconds) * 1000n;
    }
    case 'llm':
      if (typeof p.max_tokens !== 'number') throw new AiBadRequest('MaxTokens not specified');
      return BigInt(p.max_tokens);
    case 'text-to-speech':
      // Characters (runes), as go-livepeer counts them.
      return BigInt([...(typeof p.text === 'string' ? p.text : '')].length) * 1000n;
  }
}

/**
 * Whole seconds of an audio file (ffprobe), 0 when it has none or cannot be read. From a file:
 * read from a pipe, ffprobe cannot tell the duration of a WAV.
 */
async function audioSeconds(data: Buffer): Promise<number> {
  if (data.length === 0) return 0;
  const dir = await mkdtemp(join(tmpdir(), 'lp-audio-'));
  try {
    const file = join(dir, 'audio');
    await writeFile(file, data);
    return await new Promise<number>((resolve) => {
      const child = spawn(
        'ffprobe',
        ['-v', 'error', '-show_entries', 'format=duration', '-of', 'default=nw=1:nk=1', file],
        { stdio: ['ignore', 'pipe', 'ignore'] },
      );
      let out = '';
      child.stdout.on('data', (c: Buffer) => {
        out += c.toString();
      });
      child.on('error', () => resolve(0));
      child.on('close', () => {
        const s = Number.parseFloat(out.trim());
        resolve(Number.isFinite(s) ? Math.trunc(s) : 0);
      });
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
