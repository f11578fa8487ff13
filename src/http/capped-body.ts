// One bounded reader for answers from services we call (webhooks, the remote signer,
// orchestrators' event channels): a peer that sends an endless body costs at most `max` bytes.

/** An answer body read up to `max` bytes; `undefined` once it is longer (the rest is not read). */
export async function readCapped(res: Response, max: number): Promise<Buffer | undefined> {
  const body = res.body;
  if (!body) return Buffer.alloc(0);
  const declared = Number(res.headers.get('content-length'));
  if (Number.isFinite(declared) && declared > max) {
    await body.cancel().catch(() => {});
    return undefined;
  }
  const reader = body.getReader();
  const chunks: Buffer[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      await reader.cancel().catch(() => {});
      return undefined;
    }
    chunks.push(Buffer.from(value.buffer, value.byteOffset, value.byteLength));
  }
  return Buffer.concat(chunks);
}
