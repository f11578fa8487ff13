// werift's close() drops its sockets without a word: the remote peer notices only when ICE consent
// expires, ~30 s later, so a publisher or viewer stays "connected" to a stream that has ended.
// A DTLS close_notify alert (RFC 6347 on RFC 5246 §7.2.1), as browsers send on close(), tells it
// at once: its DTLS transport goes to "closed" and media stops being sent.
import type { RTCPeerConnection } from 'werift';

const CONTENT_TYPE_ALERT = 21;
const LEVEL_WARNING = 1;
const CLOSE_NOTIFY = 0;
const RECORD_HEADER_BYTES = 13;
const FLUSH_MS = 2;

/** Sends close_notify on every connected DTLS transport of `pc`; never throws (best effort, UDP). */
export async function sendCloseNotify(pc: RTCPeerConnection): Promise<void> {
  let sent = 0;
  await Promise.allSettled(
    pc.dtlsTransports.map(async (transport) => {
      const socket = transport.dtls;
      if (transport.state !== 'connected' || !socket?.connected) return;
      const ctx = socket.dtls;
      // One record of the current epoch, encrypted as werift encrypts application data.
      const record = {
        recordLayerHeader: {
          contentType: CONTENT_TYPE_ALERT,
          protocolVersion: ctx.version,
          epoch: ctx.epoch,
          sequenceNumber: ++ctx.recordSequenceNumber,
          contentLen: 2,
        },
        fragment: Buffer.from([LEVEL_WARNING, CLOSE_NOTIFY]),
      };
      const sealed = socket.cipher.encryptPacket(record as Parameters<typeof socket.cipher.encryptPacket>[0]);
      const h = sealed.recordLayerHeader;
      const out = Buffer.alloc(RECORD_HEADER_BYTES + sealed.fragment.length);
      out.writeUInt8(h.contentType, 0);
      out.writeUInt8(h.protocolVersion.major, 1);
      out.writeUInt8(h.protocolVersion.minor, 2);
      out.writeUInt16BE(h.epoch, 3);
      out.writeUIntBE(h.sequenceNumber, 5, 6);
      out.writeUInt16BE(sealed.fragment.length, 11);
      sealed.fragment.copy(out, RECORD_HEADER_BYTES);
      await socket.transport.send(out);
      sent++;
    }),
  );
  if (sent === 0) return;
  // werift hands the datagram to the socket without waiting for it to leave; closing the socket
  // in the same turn cancels the send. One timer turn lets libuv write it.
  await new Promise((resolve) => setTimeout(resolve, FLUSH_MS));
}
