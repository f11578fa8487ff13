// multipart/form-data both ways: reading an upload into plain fields (text values as strings,
// files as UploadedFile) for schema validation, and writing the request an orchestrator gets, in
// go-livepeer's order (ai/worker/multipart.go: the file part first, then the fields present).
import { randomBytes } from 'node:crypto';

export interface UploadedFile {
  filename: string;
  contentType: string;
  data: Buffer;
}

export function isUploadedFile(v: unknown): v is UploadedFile {
  return typeof v === 'object' && v !== null && Buffer.isBuffer((v as UploadedFile).data);
}

export class MultipartError extends Error {}

/**
 * The parts of a multipart/form-data body; a repeated name keeps its first value. Throws
 * MultipartError when the body does not parse.
 */
export async function parseMultipart(
  body: Buffer,
  contentType: string,
): Promise<Record<string, string | UploadedFile>> {
  if (!/;\s*boundary=/i.test(contentType)) throw new MultipartError('multipart/form-data without a boundary');
  let form: FormData;
  try {
    // undici's parser (the one behind fetch) is built in; no dependency needed.
    form = await new Response(body as unknown as BodyInit, {
      headers: { 'content-type': contentType },
    }).formData();
  } catch {
    throw new MultipartError('the multipart/form-data body does not parse');
  }
  const out: Record<string, string | UploadedFile> = {};
  for (const [name, value] of form) {
    if (name in out) continue;
    if (typeof value === 'string') out[name] = value;
    else {
      out[name] = {
        filename: value.name || name,
        contentType: value.type || 'application/octet-stream',
        data: Buffer.from(await value.arrayBuffer()),
      };
    }
  }
  return out;
}

export interface MultipartBody {
  contentType: string;
  body: Buffer;
}

/** A multipart/form-data body: the file first, then each field that has a value, in order. */
export function buildMultipart(
  file: { name: string; upload: UploadedFile },
  fields: [string, string][],
): MultipartBody {
  const boundary = randomBytes(30).toString('hex');
  const chunks: Buffer[] = [];
  // As browsers do (WHATWG): parsers differ on backslash escapes, none on percent-encoding.
  const quote = (s: string) => s.replace(/"/g, '%22').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
  // As Go's CreateFormFile: the original file name and application/octet-stream.
  chunks.push(
    Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="${quote(file.name)}"; filename="${quote(file.upload.filename)}"\r\nContent-Type: application/octet-stream\r\n\r\n`,
    ),
    file.upload.data,
    Buffer.from('\r\n'),
  );
  for (const [name, value] of fields) {
    chunks.push(
      Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; name="${quote(name)}"\r\n\r\n${value}\r\n`,
      ),
    );
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { contentType: `multipart/form-data; boundary=${boundary}`, body: Buffer.concat(chunks) };
}
