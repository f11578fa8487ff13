// The batch AI pipelines a gateway serves, as go-livepeer's gateway does (server/ai_mediaserver.go),
// with the request schemas of livepeer/ai-runner's runner/gateway.openapi.yaml (field names,
// types, defaults) plus a few lower bounds of ours, and what each one costs (go-livepeer's
// units, see docs/batch-ai.md): pixels for images and video, milliseconds of audio, tokens,
// characters of speech.
import { Capability } from '../wire/lp-rpc.ts';

export type PipelineName =
  | 'text-to-image'
  | 'image-to-image'
  | 'upscale'
  | 'image-to-video'
  | 'audio-to-text'
  | 'segment-anything-2'
  | 'image-to-text'
  | 'text-to-speech'
  | 'llm';

/** JSON Schema (draft 7, the subset fastify's ajv and OpenAPI 3.1 share). */
export type Schema = Record<string, unknown>;

export interface AiPipeline {
  name: PipelineName;
  capability: number;
  /** go-livepeer's default model id when a request names none (server/ai_process.go). */
  defaultModel: string;
  /** `model` for llm, `model_id` for the rest. */
  modelField: 'model_id' | 'model';
  body: 'json' | 'multipart';
  /** The multipart file field. */
  file?: 'image' | 'audio';
  summary: string;
  /** Properties in the order go-livepeer writes them; the file field is described as binary. */
  properties: Record<string, Schema>;
  required: string[];
  /** Name of the reply schema in the OpenAPI document. */
  reply: string;
  /** Files in the reply the gateway stores and serves from /results (go-livepeer re-hosts them). */
  results: 'images' | 'audio' | 'none';
}

/**
 * Upper bounds of ours: ai-runner's schema gives types and defaults but no maximum, and a request
 * past what a GPU can hold fails on the orchestrator (out of memory, a timeout) after it was paid
 * and counted against it. docs/input-checks.md says where each figure comes from.
 */
export const BOUNDS = {
  /** Width or height of a generated image or video (SDXL's native side is 1024). */
  outputSide: 2048,
  /** Width or height of an uploaded image, and its pixels (go-livepeer decodes it whole). */
  inputSide: 4096,
  inputPixels: 4096 * 4096,
  /** The x4 upscaler's input: its output is 16 times larger. */
  upscaleInputPixels: 1024 * 1024,
  steps: 200,
  imagesPerPrompt: 10,
  fps: 60,
  /** Llama 3.1's context. */
  maxTokens: 131_072,
  /** Hugging Face ids are at most 96 characters; room for a revision. */
  modelId: 256,
  prompt: 20_000,
  speechText: 10_000,
  llmMessages: 1000,
  llmContent: 1_000_000,
  /** Audio to transcribe, in seconds. */
  audioSeconds: 4 * 3600,
} as const;

const str = (description: string, extra: Schema = {}): Schema => ({ type: 'string', description, ...extra });
const int = (description: string, extra: Schema = {}): Schema => ({ type: 'integer', description, ...extra });
const num = (description: string, extra: Schema = {}): Schema => ({ type: 'number', description, ...extra });
const bool = (description: string, dflt: boolean): Schema => ({
  type: 'boolean',
  description,
  default: dflt,
});
const file = (description: string): Schema => ({ type: 'string', format: 'binary', description });

const MODEL_ID = (what: string) =>
  str(`Hugging Face model ID used for ${what}. Empty or absent: the pipeline's default model.`, {
    maxLength: BOUNDS.modelId,
  });
const LORAS = str(
  'A LoRA (Low-Rank Adaptation) model and its corresponding weight for image generation. Example: { "latent-consistency/lcm-lora-sdxl": 1.0, "nerijs/pixel-art-xl": 1.2}.',
  { default: '', maxLength: BOUNDS.prompt },
);
const GUIDANCE = num(
  'Encourages model to generate images closely linked to the text prompt (higher values may reduce image quality).',
  { default: 7.5, minimum: 0, maximum: 50 },
);
const NEGATIVE = str(
  'Text prompt(s) to guide what to exclude from image generation. Ignored if guidance_scale < 1.',
  { default: '', maxLength: BOUNDS.prompt },
);
const SAFETY = bool(
  'Perform a safety check to estimate if generated images could be offensive or harmful.',
  true,
);
const SEED = int('Seed for random number generation.', { minimum: 0, maximum: Number.MAX_SAFE_INTEGER });
const STEPS = (dflt: number) =>
  int(
    'Number of denoising steps. More steps usually lead to higher quality images but slower inference. Modulated by strength.',
    { default: dflt, minimum: 1, maximum: BOUNDS.steps },
  );
const NUM_IMAGES = int('Number of images to generate per prompt.', {
  default: 1,
  minimum: 1,
  maximum: BOUNDS.imagesPerPrompt,
});
const PROMPT = (description: string, extra: Schema = {}) =>
  str(description, { maxLength: BOUNDS.prompt, ...extra });
const SIDE = (description: string, dflt: number) =>
  int(description, { default: dflt, minimum: 1, maximum: BOUNDS.outputSide });

export const PIPELINES: Record<PipelineName, AiPipeline> = {
  'text-to-image': {
    name: 'text-to-image',
    capability: Capability.TextToImage,
    defaultModel: 'stabilityai/sdxl-turbo',
    modelField: 'model_id',
    body: 'json',
    summary: 'Generate images from text prompts.',
    properties: {
      model_id: MODEL_ID('image generation'),
      loras: LORAS,
      prompt: PROMPT(
        "Text prompt(s) to guide image generation. Separate multiple prompts with '|' if supported by the model.",
        { minLength: 1 },
      ),
      // go-livepeer's gateway sends 512 × 512 when these are absent (server/ai_process.go:213-220),
      // not ai-runner's 1024 × 576: a client gets what it got from go-livepeer.
      height: SIDE('The height in pixels of the generated image.', 512),
      width: SIDE('The width in pixels of the generated image.', 512),
      guidance_scale: GUIDANCE,
      negative_prompt: NEGATIVE,
      safety_check: SAFETY,
      seed: SEED,
      num_inference_steps: STEPS(50),
      num_images_per_prompt: NUM_IMAGES,
    },
    required: ['prompt'],
    reply: 'ImageResponse',
    results: 'images',
  },
  'image-to-image': {
    name: 'image-to-image',
    capability: Capability.ImageToImage,
    defaultModel: 'stabilityai/sdxl-turbo',
    modelField: 'model_id',
    body: 'multipart',
    file: 'image',
    summary: 'Apply image transformations to a provided image.',
    properties: {
      image: file('Uploaded image to modify with the pipeline.'),
      prompt: PROMPT('Text prompt(s) to guide image generation.', { minLength: 1 }),
      model_id: MODEL_ID('image generation'),
      loras: LORAS,
      strength: num('Degree of transformation applied to the reference image (0 to 1).', {
        default: 0.8,
        minimum: 0,
        maximum: 1,
      }),
      guidance_scale: GUIDANCE,
      image_guidance_scale: num('Degree to which the generated image is pushed towards the initial image.', {
        default: 1.5,
        minimum: 0,
        maximum: 50,
      }),
      negative_prompt: NEGATIVE,
      safety_check: SAFETY,
      seed: SEED,
      num_inference_steps: STEPS(100),
      num_images_per_prompt: NUM_IMAGES,
    },
    required: ['prompt', 'image'],
    reply: 'ImageResponse',
    results: 'images',
  },
  upscale: {
    name: 'upscale',
    capability: Capability.Upscale,
    defaultModel: 'stabilityai/stable-diffusion-x4-upscaler',
    modelField: 'model_id',
    body: 'multipart',
    file: 'image',
    summary: 'Upscale an image by increasing its resolution.',
    properties: {
      image: file('Uploaded image to modify with the pipeline.'),
      prompt: PROMPT('Text prompt(s) to guide upscaled image generation.', { minLength: 1 }),
      model_id: MODEL_ID('upscaled image generation'),
      safety_check: SAFETY,
      seed: SEED,
      num_inference_steps: STEPS(75),
    },
    required: ['prompt', 'image'],
    reply: 'ImageResponse',
    results: 'images',
  },
  'image-to-video': {
    name: 'image-to-video',
    capability: Capability.ImageToVideo,
    defaultModel: 'stabilityai/stable-video-diffusion-img2vid-xt',
    modelField: 'model_id',
    body: 'multipart',
    file: 'image',
    summary:
      'Generate a video from a provided image. With the header `Prefer: respond-async` the answer is 202 {request_id}; poll POST /image-to-video/result.',
    properties: {
      image: file('Uploaded image to generate a video from.'),
      model_id: MODEL_ID('video generation'),
      height: SIDE('The height in pixels of the generated video.', 576),
      width: SIDE('The width in pixels of the generated video.', 1024),
      fps: int('The frames per second of the generated video.', {
        default: 6,
        minimum: 1,
        maximum: BOUNDS.fps,
      }),
      motion_bucket_id: int(
        'Used for conditioning the amount of motion for the generation. The higher the number the more motion will be in the video.',
        { default: 127, minimum: 0, maximum: 1023 },
      ),
      noise_aug_strength: num(
        'Amount of noise added to the conditioning image. Higher values reduce resemblance to the conditioning image and increase motion.',
        { default: 0.02, minimum: 0, maximum: 10 },
      ),
      safety_check: SAFETY,
      seed: SEED,
      num_inference_steps: STEPS(25),
    },
    required: ['image'],
    reply: 'VideoResponse',
    results: 'images',
  },
  'audio-to-text': {
    name: 'audio-to-text',
    capability: Capability.AudioToText,
    defaultModel: 'openai/whisper-large-v3',
    modelField: 'model_id',
    body: 'multipart',
    file: 'audio',
    summary: 'Transcribe audio files to text.',
    properties: {
      audio: file('Uploaded audio file to be transcribed.'),
      model_id: MODEL_ID('transcription'),
      return_timestamps: str(
        "Return timestamps for the transcribed text. Supported values: 'sentence', 'word', or a string boolean ('true' or 'false'). Default is 'true' ('sentence'). 'false' means no timestamps. 'word' means word-based timestamps.",
        { default: 'true', maxLength: 16 },
      ),
    },
    required: ['audio'],
    reply: 'TextResponse',
    results: 'none',
  },
  'segment-anything-2': {
    name: 'segment-anything-2',
    capability: Capability.SegmentAnything2,
    defaultModel: 'facebook/sam2-hiera-large',
    modelField: 'model_id',
    body: 'multipart',
    file: 'image',
    summary: 'Segment objects in an image.',
    properties: {
      image: file('Image to segment.'),
      model_id: MODEL_ID('image segmentation'),
      point_coords: PROMPT(
        'Nx2 array of point prompts to the model, where each point is in (X,Y) in pixels.',
      ),
      point_labels: PROMPT(
        'Labels for the point prompts, where 1 indicates a foreground point and 0 indicates a background point.',
      ),
      box: PROMPT('A length 4 array given as a box prompt to the model, in XYXY format.'),
      mask_input: str(
        'A low-resolution mask input to the model, typically from a previous prediction iteration, with the form 1xHxW (H=W=256 for SAM).',
        { maxLength: 4 * BOUNDS.prompt },
      ),
      multimask_output: bool(
        'If true, the model will return three masks for ambiguous input prompts, often producing better masks than a single prediction.',
        true,
      ),
      return_logits: bool('If true, returns un-thresholded mask logits instead of a binary mask.', true),
      normalize_coords: bool(
        'If true, the point coordinates will be normalized to the range [0,1], with point_coords expected to be with respect to image dimensions.',
        true,
      ),
    },
    required: ['image'],
    reply: 'MasksResponse',
    results: 'none',
  },
  'image-to-text': {
    name: 'image-to-text',
    capability: Capability.ImageToText,
    defaultModel: 'Salesforce/blip-image-captioning-large',
    modelField: 'model_id',
    body: 'multipart',
    file: 'image',
    summary: 'Transform image files to text.',
    properties: {
      image: file('Uploaded image to transform with the pipeline.'),
      prompt: PROMPT('Text prompt(s) to guide transformation.', { default: '' }),
      model_id: MODEL_ID('transformation'),
    },
    required: ['image'],
    reply: 'ImageToTextResponse',
    results: 'none',
  },
  'text-to-speech': {
    name: 'text-to-speech',
    capability: Capability.TextToSpeech,
    defaultModel: 'parler-tts/parler-tts-large-v1',
    modelField: 'model_id',
    body: 'json',
    summary: 'Generate a text-to-speech audio file based on the provided text input and speaker description.',
    properties: {
      model_id: MODEL_ID('text to speech generation'),
      text: str('Text input for speech generation.', { minLength: 1, maxLength: BOUNDS.speechText }),
      description: PROMPT('Description of speaker to steer text to speech generation.', {
        default:
          'A male speaker delivers a slightly expressive and animated speech with a moderate speed and pitch.',
      }),
    },
    required: ['text'],
    reply: 'AudioResponse',
    results: 'audio',
  },
  llm: {
    name: 'llm',
    capability: Capability.LLM,
    defaultModel: 'meta-llama/llama-3.1-8B-Instruct',
    modelField: 'model',
    body: 'json',
    summary:
      'Generate text using a language model. With "stream": true the answer is Server-Sent Events, one `data: {LLMResponse chunk}` per event, relayed as they arrive.',
    properties: {
      messages: {
        type: 'array',
        minItems: 1,
        maxItems: BOUNDS.llmMessages,
        items: {
          type: 'object',
          required: ['role', 'content'],
          properties: {
            role: { type: 'string', maxLength: 32 },
            content: { type: 'string', maxLength: BOUNDS.llmContent },
          },
        },
      },
      model: str('Model id. Empty or absent: the pipeline default model.', { maxLength: BOUNDS.modelId }),
      temperature: num('Sampling temperature.', { default: 0.7, minimum: 0, maximum: 2 }),
      max_tokens: int('Maximum tokens to generate; the fee is paid for this many.', {
        default: 256,
        minimum: 1,
        maximum: BOUNDS.maxTokens,
      }),
      top_p: num('Nucleus sampling probability mass.', { default: 1.0, minimum: 0, maximum: 1 }),
      top_k: int('Top-k sampling; -1 = off.', { default: -1, minimum: -1, maximum: 100_000 }),
      stream: bool('Answer with Server-Sent Events as tokens are generated.', false),
    },
    required: ['messages'],
    reply: 'LLMResponse',
    results: 'none',
  },
};

export const PIPELINE_NAMES = Object.keys(PIPELINES) as PipelineName[];

/** The request's model id: the one named, else go-livepeer's default for the pipeline. */
export function modelOf(p: AiPipeline, body: Record<string, unknown>): string {
  const named = body[p.modelField];
  return typeof named === 'string' && named !== '' ? named : p.defaultModel;
}

/** The schema fastify validates a request body with (files are UploadedFile objects). */
export function validationSchema(p: AiPipeline): Schema {
  const properties: Record<string, Schema> = {};
  for (const [name, s] of Object.entries(p.properties)) {
    properties[name] =
      name === p.file
        ? { type: 'object', required: ['data', 'filename'], properties: { filename: { type: 'string' } } }
        : s;
  }
  return { type: 'object', properties, required: p.required };
}

/** The OpenAPI request schema (files as binary strings). */
export function openapiSchema(p: AiPipeline): Schema {
  return { type: 'object', properties: p.properties, required: p.required };
}
