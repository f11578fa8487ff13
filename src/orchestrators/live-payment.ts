// A live job's ongoing payment (POST {transcoder}/payment, spec livepeer-pm.md §3.3): the
// Livepeer-Payment and Livepeer-Segment headers, no body; the reply is a PaymentResult protobuf
// with fresh OrchestratorInfo (new ticket params).
import { request } from 'node:https';
import { decodeMessage, type OrchestratorInfo } from '../wire/lp-rpc.ts';
import { OrchestratorError } from './errors.ts';
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
export function sendLivePayment(
  transcoder: string,
  req: LivePaymentRequest,
): Promise<OrchestratorInfo | undefined> {
  const url = new URL('payment', transcoder.endsWith('/') ? transcoder : `${transcoder}/`);
  const origin = url.origin;
  const timeoutMs = req.timeoutMs ?? 5000;
  return new Promise((resolve, reject) => {
    const r = request(
      url,
      {
        method: 'POST',
        rejectUnauthorized: false, // orchestrators use self-signed certificates
        timeout: timeoutMs,
        headers: {
          'Content-Length': 0,
          'Livepeer-Payment': req.payment,
          'Livepeer-Segment': req.segment,
          Authorization: AI_WORKER_PROTOCOL,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_REPLY_BYTES) {
            r.destroy(new OrchestratorError('invalid-reply', origin, 'payment reply too large'));
            return;
          }
          chunks.push(c);
        });
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          const status = res.statusCode ?? 0;
          if (status !== 200) {
            reject(
              new OrchestratorError(
                'refused',
                origin,
                `payment: ${status} ${body.toString('utf8').trim()}`,
                status,
              ),
            );
            return;
          }
          try {
            resolve(decodeMessage('PaymentResult', body).info);
          } catch {
            reject(new OrchestratorError('invalid-reply', origin, 'payment reply is not a PaymentResult'));
          }
        });
        res.on('error', reject);
      },
    );
    r.on('timeout', () =>
      r.destroy(new OrchestratorError('timeout', origin, `payment timed out after ${timeoutMs} ms`)),
    );
    r.on('error', (err) => {
      if (err instanceof OrchestratorError) reject(err);
      else if (/certificate|SSL|TLS/i.test(err.message))
        reject(new OrchestratorError('tls', origin, err.message));
      else reject(new OrchestratorError('unreachable', origin, err.message));
    });
    r.end();
  });
}
