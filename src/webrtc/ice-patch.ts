// RFC 9725 §4.3 PATCH semantics shared by both peers: the If-Match precondition against the ICE
// session's entity-tag, and the errors a PATCH can end in.
import { randomBytes } from 'node:crypto';

export type IcePatchResult =
  /** Candidates added (or end-of-candidates noted): 204, no body, no ETag. */
  | { kind: 'trickle'; added: number }
  /** ICE restarted: 200 with our new ufrag/pwd/candidates and the new ICE session's ETag. */
  | { kind: 'restart'; etag: string; fragment: string };

export type IcePatchErrorCode =
  | 'PRECONDITION_REQUIRED'
  | 'PRECONDITION_FAILED'
  | 'BAD_IF_MATCH'
  | 'BAD_SDPFRAG'
  | 'TOO_MANY_CANDIDATES'
  | 'ICE_RESTART_NOT_POSSIBLE'
  | 'TOO_MANY_RESTARTS'
  | 'SESSION_ENDED';

/** A PATCH the session refuses; `status` is the HTTP status RFC 9725 / RFC 9110 call for. */
export class IcePatchError extends Error {
  override name = 'IcePatchError';
  constructor(
    readonly status: 400 | 404 | 409 | 412 | 428 | 429,
    readonly code: IcePatchErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** A new strong entity-tag for an ICE session, quoted as it goes in ETag. */
export function newIceEtag(): string {
  return `"${randomBytes(9).toString('base64url')}"`;
}

/**
 * RFC 9110 §13.1.1 If-Match with strong comparison, as RFC 9725 §4.3.1 asks: 428 when absent (a
 * PATCH must always name the ICE session), 412 when no listed tag is the current one (`*` matches
 * any), 400 when the header is not a list of entity-tags.
 */
export function checkIfMatch(header: string | undefined, currentEtag: string): void {
  if (header === undefined || header.trim() === '') {
    throw new IcePatchError(
      428,
      'PRECONDITION_REQUIRED',
      'PATCH needs If-Match: the ETag of the ICE session (or * for an ICE restart)',
    );
  }
  const value = header.trim();
  if (value === '*') return;
  const tags = parseEntityTags(value);
  if (!tags) {
    throw new IcePatchError(400, 'BAD_IF_MATCH', 'If-Match must be * or a list of quoted entity-tags');
  }
  // Weak tags never match under strong comparison.
  if (!tags.some((t) => !t.weak && t.tag === currentEtag)) {
    throw new IcePatchError(
      412,
      'PRECONDITION_FAILED',
      'If-Match does not name the current ICE session (it was restarted, or the ETag is wrong)',
    );
  }
}

function parseEntityTags(value: string): { weak: boolean; tag: string }[] | undefined {
  const tags: { weak: boolean; tag: string }[] = [];
  // entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE, etagc = %x21 / %x23-7E / obs-text
  const re = /\s*(W\/)?("[\x21\x23-\x7e\x80-\xff]*")\s*(,|$)/y;
  let at = 0;
  while (at < value.length) {
    re.lastIndex = at;
    const m = re.exec(value);
    if (!m) return undefined;
    tags.push({ weak: m[1] !== undefined, tag: m[2] });
    at = re.lastIndex;
    if (m[3] === '' && at < value.length) return undefined;
  }
  return tags.length > 0 ? tags : undefined;
}
