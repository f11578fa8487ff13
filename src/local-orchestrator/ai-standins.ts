// CPU stand-ins for the batch AI models the local orchestrator serves. They are not models: they
// answer with ai-runner's shapes and sizes, and their output depends on the inputs the way a
// model's would (prompt and seed), so a client and a gateway can be built and tested without a GPU.
import { createHash, randomInt } from 'node:crypto';
import { encodePng, filterImage, imageConfig } from './ai-image.ts';
import { type AiPipelineHandler, type AiRequest, type AiResult, RunnerError } from './ai-pipelines.ts';

/**
 * Model ids advertised by default: the ids go-livepeer users send for these pipelines, so the
 * same client works against a fresh `npm start`. Each is served by the stand-in of its pipeline.
 */
export const DEFAULT_AI_MODELS = {
  'text-to-image': [
    'stabilityai/sdxl-turbo',
    'ByteDance/SDXL-Lightning',
    'SG161222/RealVisXL_V4.0_Lightning',
  ],
  'image-to-image': ['stabilityai/sdxl-turbo', 'timbrooks/instruct-pix2pix'],
  upscale: ['stabilityai/stable-diffusion-x4-upscaler'],
} as const;

export type StandInPipeline = keyof typeof DEFAULT_AI_MODELS;
export const STAND_IN_PIPELINES = Object.keys(DEFAULT_AI_MODELS) as StandInPipeline[];

/** stable-diffusion-x4-upscaler's factor. */
export const UPSCALE_FACTOR = 4;
/** Above this many output pixels a request fails as a GPU out of memory would (4096 × 4096). */
export const MAX_OUTPUT_PIXELS = 4096 * 4096;

/** The runner's default seed: a random uint32. */
const randomSeed = () => randomInt(0, 2 ** 32 - 1);

function seedOf(v: unknown): number {
  return typeof v === 'number' ? v : randomSeed();
}

function hashBytes(prompt: string, seed: number): Buffer {
  return createHash('sha256').update(`${prompt}\u0000${seed}`).digest();
}

/**
 * A deterministic picture of (prompt, seed): two plane waves and a ring mixing three colours,
 * all taken from sha256(prompt, seed). Same inputs, same pixels; any change, another picture.
 */
export function promptImage(prompt: string, seed: number, width: number, height: number): Buffer {
  const h = hashBytes(prompt, seed);
  const colors = [0, 3, 6].map((o) => [h[o], h[o + 1], h[o + 2]]);
  const angle = (h[9] / 256) * 2 * Math.PI;
  const freq = 1 + (h[10] % 6);
  const phase = (h[11] / 256) * 2 * Math.PI;
  const ringFreq = 2 + (h[12] % 8);
  const cx = h[13] / 255;
  const cy = h[14] / 255;
  const dx = Math.cos(angle) * freq * 2 * Math.PI;
  const dy = Math.sin(angle) * freq * 2 * Math.PI;
  const rgb = Buffer.alloc(width * height * 3);
  let i = 0;
  for (let y = 0; y < height; y++) {
    const v = y / height;
    for (let x = 0; x < width; x++) {
      const u = x / width;
      const t = 0.5 + 0.5 * Math.sin(u * dx + v * dy + phase);
      const r = Math.hypot(u - cx, v - cy);
      const s = 0.25 + 0.25 * Math.sin(r * ringFreq * 2 * Math.PI);
      for (let c = 0; c < 3; c++) {
        const ab = colors[0][c] + (colors[1][c] - colors[0][c]) * t;
        rgb[i++] = ab + (colors[2][c] - ab) * s;
      }
    }
  }
  return encodePng(width, height, rgb);
}

function textToImage(req: AiRequest): AiResult {
  const p = req.params;
  const prompt = typeof p.prompt === 'string' ? p.prompt : '';
  if (!prompt) throw new RunnerError(400, 'Prompt must be provided.');
  // The runner's defaults (go-livepeer bills 512×512 when they are absent; its gateway always sends them).
  const width = typeof p.width === 'number' ? p.width : 1024;
  const height = typeof p.height === 'number' ? p.height : 576;
  const count = typeof p.num_images_per_prompt === 'number' ? p.num_images_per_prompt : 1;
  if (width <= 0 || height <= 0 || width % 8 !== 0 || height % 8 !== 0) {
    throw new RunnerError(400, `height and width have to be divisible by 8 but are ${height} and ${width}.`);
  }
  if (count < 1) throw new RunnerError(400, 'num_images_per_prompt must be at least 1.');
  if (width * height * count > MAX_OUTPUT_PIXELS) {
    throw new RunnerError(500, 'Out of memory error. Try reducing output image resolution.');
  }
  const seed = seedOf(p.seed);
  const images = Array.from({ length: count }, (_, i) => ({
    png: promptImage(prompt, seed + i, width, height),
    seed: seed + i,
    nsfw: false,
  }));
  return { kind: 'images', images };
}

function inputImage(req: AiRequest, pipelineName: string) {
  const data = req.files.image?.data;
  // The orchestrator has already read the header; a body ffmpeg cannot decode fails below.
  if (!data) throw new RunnerError(400, `${pipelineName}: no image`);
  return { data, ...imageConfig(data) };
}

async function imageToImage(req: AiRequest): Promise<AiResult> {
  const p = req.params;
  const image = inputImage(req, 'image-to-image');
  const count = typeof p.num_images_per_prompt === 'number' ? p.num_images_per_prompt : 1;
  if (count < 1) throw new RunnerError(400, 'num_images_per_prompt must be at least 1.');
  if (image.width * image.height * count > MAX_OUTPUT_PIXELS) {
    throw new RunnerError(500, 'Out of memory error. Try reducing input image resolution.');
  }
  const prompt = typeof p.prompt === 'string' ? p.prompt : '';
  const strength = typeof p.strength === 'number' ? Math.min(1, Math.max(0, p.strength)) : 0.8;
  const seed = seedOf(p.seed);
  const images = [];
  for (let i = 0; i < count; i++) {
    // Hue turned by an angle of (prompt, seed), more as strength grows; saturation up with strength.
    const h = hashBytes(prompt, seed + i);
    const degrees = (30 + (h.readUInt16BE(0) % 300)) * strength;
    const filter = `hue=h=${degrees.toFixed(2)}:s=${(1 + strength).toFixed(2)}`;
    const png = await filterImage(image.data, filter, req.signal).catch((err: Error) => {
      throw new RunnerError(500, `Image-to-image pipeline error: ${err.message}`);
    });
    images.push({ png, seed: seed + i, nsfw: false });
  }
  return { kind: 'images', images };
}

async function upscale(req: AiRequest): Promise<AiResult> {
  const image = inputImage(req, 'upscale');
  if (image.width * image.height * UPSCALE_FACTOR ** 2 > MAX_OUTPUT_PIXELS) {
    throw new RunnerError(500, 'Out of memory error. Try reducing input image resolution.');
  }
  const filter = `scale=iw*${UPSCALE_FACTOR}:ih*${UPSCALE_FACTOR}:flags=lanczos`;
  const png = await filterImage(image.data, filter, req.signal).catch((err: Error) => {
    throw new RunnerError(500, `Upscale pipeline error: ${err.message}`);
  });
  return { kind: 'images', images: [{ png, seed: seedOf(req.params.seed), nsfw: false }] };
}

const RUNS: Record<StandInPipeline, (req: AiRequest) => AiResult | Promise<AiResult>> = {
  'text-to-image': textToImage,
  'image-to-image': imageToImage,
  upscale,
};

/** The stand-in of a pipeline, serving `models`. */
export function standIn(pipeline: StandInPipeline, models: readonly string[]): AiPipelineHandler {
  const run = RUNS[pipeline];
  return { models, run: async (req) => run(req) };
}
