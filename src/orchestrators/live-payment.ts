// A live job's ongoing payment (POST {transcoder}/payment, spec livepeer-pm.md §3.3): the
// Livepeer-Payment and Livepeer-Segment headers, no body; the reply is a PaymentResult protobuf
// with fresh OrchestratorInfo (new ticket params).
import { decodeMessage, type OrchestratorInfo } from '../wire/lp-rpc.ts';
import { OrchestratorError } from './errors.ts';
import { post, readBody } from './http.ts';
import { AI_WORKER_PROTOCOL } from './live-video.ts';

export interface LivePaymentRequest {
  /** Livepeer-Payment value. */
  payment: string;
  /** Livepeer-Segment value (SegData.manifestId = the job's manifest id). */
  segment: string;
  timeoutMs?: number;
}

const MAX_REPLY_BYTES = 64 * 1024;

/** Sends one payment; resolves with the PaymentResult's info (if any), rejects with an OrchestratorError. */
export async function sendLivePayment(
  transcoder: string,
  req: LivePaymentRequest,
): Promise<OrchestratorInfo | undefined> {
  const url = new URL('payment', transcoder.endsWith('/') ? transcoder : `${transcoder}/`);
  const timeoutMs = req.timeoutMs ?? 5000;
  const res = await post(url, {
    headers: {
      'Livepeer-Payment': req.payment,
      'Livepeer-Segment': req.segment,
      Authorization: AI_WORKER_PROTOCOL,
    },
    body: Buffer.alloc(0),
    timeoutMs,
  });
  const body = await readBody(res, MAX_REPLY_BYTES, timeoutMs, url.origin);
  const status = res.statusCode ?? 0;
  if (status !== 200) {
    throw new OrchestratorError(
      'refused',
      url.origin,
      `payment: ${status} ${body.toString('utf8').trim()}`,
      status,
    );
  }
  try {
    return decodeMessage('PaymentResult', body).info;
  } catch {
    throw new OrchestratorError('invalid-reply', url.origin, 'payment reply is not a PaymentResult');
  }
}
