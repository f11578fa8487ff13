// werift parses every received RTP header twice (once to find the SRTP payload, once after
// decryption), and reads each bit field by turning the byte into a string of '0'/'1', padding it
// through array spreads and joining a slice back: ~20 small objects per field, most of the
// gateway's allocation on the ingest path (docs/performance.md, point 5). RtpHeader.deSerialize is
// a static method that werift looks up on the class at each call, so it is replaced here with one
// that reads the same fields with shifts and masks. Same input, same object, same throw (see
// test/webrtc/werift-rtp-header.test.ts: werift's own function against this one over fuzzed packets).
import { RtpHeader } from 'werift';

const ONE_BYTE_PROFILE = 0xbede;
const TWO_BYTE_PROFILE = 0x1000;

type Extension = { id: number; payload: Buffer };

/** werift's RtpHeader.deSerialize, field for field, quirks included (out-of-range reads). */
export function parseRtpHeader(raw: Buffer): RtpHeader {
  const h = new RtpHeader();
  const first = raw[0];
  // werift reads the first two bytes through Number#toString: a missing byte throws there.
  if (first === undefined || raw[1] === undefined) throw new RangeError('RTP header too short');
  h.version = first >> 6;
  h.padding = (first & 0x20) !== 0;
  h.extension = (first & 0x10) !== 0;
  h.csrcLength = first & 0x0f;
  const csrc: number[] = new Array(h.csrcLength);
  for (let i = 0; i < csrc.length; i++) csrc[i] = raw.readUInt32BE(12 + 4 * i);
  h.csrc = csrc;
  let offset = 12 + 4 * h.csrcLength;
  const second = raw[1];
  h.marker = (second & 0x80) !== 0;
  h.payloadType = second & 0x7f;
  h.sequenceNumber = raw.readUInt16BE(2);
  h.timestamp = raw.readUInt32BE(4);
  h.ssrc = raw.readUInt32BE(8);
  if (h.extension) {
    h.extensionProfile = raw.readUInt16BE(offset) as RtpHeader['extensionProfile'];
    offset += 2;
    const extensionLength = raw.readUInt16BE(offset) * 4;
    h.extensionLength = extensionLength;
    offset += 2;
    const extensions: Extension[] = [];
    const end = offset + extensionLength;
    if (h.extensionProfile === ONE_BYTE_PROFILE) {
      while (offset < end) {
        if (raw[offset] === 0) {
          offset++;
          continue;
        }
        // Past the end werift reads `undefined`, which its shifts make 0: an empty id-0 element.
        const byte = raw[offset] ?? 0;
        const id = byte >> 4;
        const len = (byte & 0x0f) + 1;
        offset++;
        if (id === 15) break;
        extensions.push({ id, payload: raw.subarray(offset, offset + len) });
        offset += len;
      }
    } else if (h.extensionProfile === TWO_BYTE_PROFILE) {
      while (offset < end) {
        if (raw[offset] === 0) {
          offset++;
          continue;
        }
        const id = raw[offset] as number;
        offset++;
        const len = raw[offset] as number;
        offset++;
        extensions.push({ id, payload: raw.subarray(offset, offset + len) });
        // A length byte past the end is undefined in werift too: the offset becomes NaN, the loop ends.
        offset += len;
      }
    } else {
      extensions.push({ id: 0, payload: raw.subarray(offset, offset + extensionLength) });
      offset += extensions[0].payload.length;
    }
    h.extensions = extensions;
  }
  h.payloadOffset = offset;
  if (h.padding) h.paddingSize = raw[raw.length - 1] as number;
  return h;
}

let installed = false;

/** Makes werift parse RTP headers with parseRtpHeader (once per process). */
export function useFastRtpHeaderParse(): void {
  if (installed) return;
  installed = true;
  RtpHeader.deSerialize = parseRtpHeader;
}
