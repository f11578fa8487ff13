// A small RTMP server for publishers (OBS, ffmpeg, hardware encoders): the plain handshake, the
// chunk stream, the AMF0 commands of a publish (connect, createStream, publish) and the FLV
// audio/video messages, handed on as H.264 access units and AAC frames. No playback, no AMF3,
// no RTMPS (put a TLS terminator in front). Node's `net` is all it needs.
import { randomBytes } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import type { Logger } from 'pino';
import { type Amf0Object, type Amf0Value, decodeAmf0, encodeAmf0 } from './amf0.ts';
import { type FlvAudioFrame, FlvDepacketizer, type FlvVideoFrame, UnsupportedMediaError } from './flv.ts';

const HANDSHAKE_SIZE = 1536;
const RTMP_VERSION = 3;
/** What we send in; what a publisher sends is set by its SetChunkSize. */
const OUT_CHUNK_SIZE = 4096;
const WINDOW_ACK_SIZE = 2_500_000;
/** A message larger than this is not a video frame a live encoder sends: the connection ends. */
const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;
/** Handshake and commands up to the publish must be done within this. */
const SETUP_TIMEOUT_MS = 15_000;
const STREAM_ID = 1;

const MSG = {
  setChunkSize: 1,
  abort: 2,
  ack: 3,
  userControl: 4,
  windowAckSize: 5,
  setPeerBandwidth: 6,
  audio: 8,
  video: 9,
  dataAmf3: 15,
  commandAmf3: 17,
  dataAmf0: 18,
  commandAmf0: 20,
} as const;

/** A refusal the publisher is told about in its onStatus (ffmpeg prints the description). */
export class RtmpRefusal extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface RtmpMediaSink {
  video(frame: FlvVideoFrame): void;
  audio(frame: FlvAudioFrame): void;
  /** The publisher is gone (closed, unpublished, or refused for its media). */
  end(reason: string): void;
}

export interface RtmpServerOptions {
  /**
   * Decides a publish. Resolve: accepted (the handler has set a sink); throw an RtmpRefusal (or
   * any error) to refuse it: the publisher gets NetStream.Publish.* with the message, then close.
   */
  onPublish: (publisher: RtmpPublisher) => Promise<void>;
  logger: Logger;
}

/** One publishing connection as the rest of the gateway sees it. */
export class RtmpPublisher {
  /** The application (`live` in rtmp://host/live/KEY). */
  app = '';
  /** The stream key without its query. */
  name = '';
  query = new URLSearchParams();
  private sink?: RtmpMediaSink;
  videoFrames = 0;
  /** Frames whose PTS ≠ DTS (B-frame streams): carried as published. */
  reorderedFrames = 0;
  audioFrames = 0;
  bytes = 0;
  lastMediaAt?: number;
  readonly depacketizer = new FlvDepacketizer();

  constructor(
    readonly remote: string,
    private readonly closeConnection: (reason: string) => void,
  ) {}

  setSink(sink: RtmpMediaSink): void {
    this.sink = sink;
  }

  /** Ends the connection from our side (the stream ended). */
  close(reason: string): void {
    this.closeConnection(reason);
  }

  /** @internal */
  deliverVideo(frame: FlvVideoFrame): void {
    this.videoFrames++;
    if (frame.pts90k !== frame.dts90k) this.reorderedFrames++;
    this.sink?.video(frame);
  }

  /** @internal */
  deliverAudio(frame: FlvAudioFrame): void {
    this.audioFrames++;
    this.sink?.audio(frame);
  }

  /** @internal */
  ended(reason: string): void {
    const sink = this.sink;
    this.sink = undefined;
    sink?.end(reason);
  }
}

interface ChunkStreamState {
  timestamp: number;
  delta: number;
  length: number;
  type: number;
  streamId: number;
  extended: boolean;
  payload?: Buffer;
  received: number;
}

class Connection {
  private buf: Buffer = Buffer.alloc(0);
  private phase: 'c0c1' | 'c2' | 'chunks' = 'c0c1';
  private inChunkSize = 128;
  private readonly streams = new Map<number, ChunkStreamState>();
  private bytesIn = 0;
  private lastAck = 0;
  private peerWindow = WINDOW_ACK_SIZE;
  private publishing = false;
  private closed = false;
  private readonly setupTimer: NodeJS.Timeout;
  readonly publisher: RtmpPublisher;

  constructor(
    private readonly socket: Socket,
    private readonly opts: RtmpServerOptions,
    private readonly log: Logger,
  ) {
    // Ended from our side (the stream ended, no orchestrator): the publisher is told why first.
    this.publisher = new RtmpPublisher(`${socket.remoteAddress}:${socket.remotePort}`, (r) => {
      this.sendStatus('error', 'NetStream.Publish.Failed', r);
      this.close(r);
    });
    socket.setNoDelay(true);
    socket.on('data', (d) => this.onData(d));
    socket.on('close', () => this.close('publisher closed the connection'));
    socket.on('error', (err) => this.close(`connection error: ${err.message}`));
    this.setupTimer = setTimeout(() => {
      if (!this.publishing) this.close(`no publish within ${SETUP_TIMEOUT_MS} ms`);
    }, SETUP_TIMEOUT_MS);
  }

  close(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.setupTimer);
    this.log.info(
      { remote: this.publisher.remote, stream: this.publisher.name, reason },
      'RTMP connection closed',
    );
    this.publisher.ended(reason);
    this.socket.end();
    // A peer that never reads must not keep the socket.
    setTimeout(() => this.socket.destroy(), 2000).unref();
  }

  private onData(data: Buffer): void {
    if (this.closed) return;
    this.bytesIn += data.length;
    this.publisher.bytes = this.bytesIn;
    this.buf = this.buf.length ? Buffer.concat([this.buf, data]) : data;
    try {
      this.consume();
    } catch (err) {
      if (err instanceof UnsupportedMediaError) this.refuseMedia(err.message);
      else this.close(`protocol error: ${(err as Error).message}`);
      return;
    }
    if (this.bytesIn - this.lastAck >= this.peerWindow) {
      this.lastAck = this.bytesIn;
      this.sendControl(MSG.ack, u32(this.bytesIn >>> 0));
    }
  }

  private consume(): void {
    if (this.phase === 'c0c1') {
      if (this.buf.length < 1 + HANDSHAKE_SIZE) return;
      if (this.buf[0] !== RTMP_VERSION) throw new Error(`RTMP version ${this.buf[0]} (only 3)`);
      const c1 = this.buf.subarray(1, 1 + HANDSHAKE_SIZE);
      const s1 = Buffer.alloc(HANDSHAKE_SIZE);
      randomBytes(HANDSHAKE_SIZE - 8).copy(s1, 8);
      // S0, S1, and S2 echoing C1 (the plain handshake; ffmpeg and OBS publish with it).
      this.socket.write(Buffer.concat([Buffer.from([RTMP_VERSION]), s1, c1]));
      this.buf = this.buf.subarray(1 + HANDSHAKE_SIZE);
      this.phase = 'c2';
    }
    if (this.phase === 'c2') {
      if (this.buf.length < HANDSHAKE_SIZE) return;
      this.buf = this.buf.subarray(HANDSHAKE_SIZE);
      this.phase = 'chunks';
    }
    while (!this.closed && this.readChunk()) {}
  }

  /** Reads one chunk if it is all there; returns whether one was read. */
  private readChunk(): boolean {
    const b = this.buf;
    if (b.length < 1) return false;
    const fmt = b[0] >> 6;
    let csid = b[0] & 0x3f;
    let at = 1;
    if (csid === 0) {
      if (b.length < 2) return false;
      csid = 64 + b[1];
      at = 2;
    } else if (csid === 1) {
      if (b.length < 3) return false;
      csid = 64 + b[1] + b[2] * 256;
      at = 3;
    }
    const headerLen = [11, 7, 3, 0][fmt];
    if (b.length < at + headerLen) return false;
    let st = this.streams.get(csid);
    if (!st) {
      if (fmt !== 0) throw new Error(`chunk stream ${csid} starts without a full header`);
      st = { timestamp: 0, delta: 0, length: 0, type: 0, streamId: 0, extended: false, received: 0 };
      this.streams.set(csid, st);
    }
    let tsField = 0;
    if (fmt <= 2) tsField = b.readUIntBE(at, 3);
    if (fmt <= 1) {
      st.length = b.readUIntBE(at + 3, 3);
      st.type = b[at + 6];
    }
    if (fmt === 0) st.streamId = b.readUInt32LE(at + 7);
    at += headerLen;
    const extended = fmt <= 2 ? tsField === 0xffffff : st.extended;
    let ext = 0;
    if (extended) {
      if (b.length < at + 4) return false;
      ext = b.readUInt32BE(at);
      at += 4;
    }
    const starting = st.payload === undefined;
    const remaining = starting ? st.length : st.length - st.received;
    const take = Math.min(remaining, this.inChunkSize);
    if (b.length < at + take) return false;
    // The whole chunk is here: commit its header.
    if (fmt <= 2) st.extended = tsField === 0xffffff;
    const tsValue = extended ? ext : tsField;
    if (starting) {
      if (st.length > MAX_MESSAGE_BYTES) throw new Error(`message of ${st.length} bytes`);
      if (fmt === 0) {
        st.timestamp = tsValue;
        st.delta = 0;
      } else if (fmt === 1 || fmt === 2) {
        st.delta = tsValue;
        st.timestamp += tsValue;
      } else {
        st.timestamp += st.delta;
      }
      st.payload = Buffer.allocUnsafe(st.length);
      st.received = 0;
    }
    const payload = st.payload as Buffer;
    b.copy(payload, st.received, at, at + take);
    st.received += take;
    this.buf = b.subarray(at + take);
    if (st.received >= st.length) {
      st.payload = undefined;
      this.onMessage(st.type, st.timestamp >>> 0, payload);
    }
    return true;
  }

  private onMessage(type: number, timestamp: number, body: Buffer): void {
    switch (type) {
      case MSG.setChunkSize:
        this.inChunkSize = Math.max(1, body.readUInt32BE(0) & 0x7fffffff);
        if (this.inChunkSize > MAX_MESSAGE_BYTES) throw new Error(`chunk size ${this.inChunkSize}`);
        return;
      case MSG.windowAckSize:
        this.peerWindow = Math.max(1, body.readUInt32BE(0));
        return;
      case MSG.abort:
        this.streams.get(body.readUInt32BE(0))?.payload && this.streams.delete(body.readUInt32BE(0));
        return;
      case MSG.commandAmf3:
        this.onCommand(decodeAmf0(body.subarray(1)));
        return;
      case MSG.commandAmf0:
        this.onCommand(decodeAmf0(body));
        return;
      case MSG.video: {
        if (!this.publishing) return;
        const frame = this.publisher.depacketizer.video(body, timestamp);
        this.publisher.lastMediaAt = Date.now();
        if (frame) this.publisher.deliverVideo(frame);
        return;
      }
      case MSG.audio: {
        if (!this.publishing) return;
        const frame = this.publisher.depacketizer.audio(body, timestamp);
        this.publisher.lastMediaAt = Date.now();
        if (frame) this.publisher.deliverAudio(frame);
        return;
      }
      default:
        // Acks, user control (ping replies), metadata (@setDataFrame): nothing to do.
        return;
    }
  }

  private onCommand(values: Amf0Value[]): void {
    const [name, txn] = values;
    const id = typeof txn === 'number' ? txn : 0;
    switch (name) {
      case 'connect': {
        const cmd = (values[2] ?? {}) as Amf0Object;
        this.publisher.app = String(cmd.app ?? '').replace(/\/+$/, '');
        this.sendControl(MSG.windowAckSize, u32(WINDOW_ACK_SIZE));
        this.sendControl(MSG.setPeerBandwidth, Buffer.concat([u32(WINDOW_ACK_SIZE), Buffer.from([2])]));
        this.sendControl(MSG.setChunkSize, u32(OUT_CHUNK_SIZE));
        this.sendCommand(0, [
          '_result',
          id,
          { fmsVer: 'FMS/3,0,1,123', capabilities: 31 },
          {
            level: 'status',
            code: 'NetConnection.Connect.Success',
            description: 'Connection succeeded.',
            objectEncoding: 0,
          },
        ]);
        return;
      }
      case 'releaseStream':
      case 'FCPublish':
      case 'FCUnpublish':
      case 'getStreamLength':
        if (name === 'FCUnpublish') this.close('publisher unpublished');
        else if (id) this.sendCommand(0, ['_result', id, null, undefined]);
        return;
      case 'createStream':
        this.sendCommand(0, ['_result', id, null, STREAM_ID]);
        return;
      case 'publish':
        this.onPublish(values);
        return;
      case 'deleteStream':
      case 'closeStream':
        this.close('publisher deleted its stream');
        return;
      case 'play':
        this.sendStatus('error', 'NetStream.Play.Failed', 'this server takes publishers only');
        this.close('play refused');
        return;
      default:
        return;
    }
  }

  private onPublish(values: Amf0Value[]): void {
    if (this.publishing) return;
    const raw = String(values[3] ?? '');
    const q = raw.indexOf('?');
    this.publisher.name = q < 0 ? raw : raw.slice(0, q);
    this.publisher.query = new URLSearchParams(q < 0 ? '' : raw.slice(q + 1));
    // The app part may carry the query too (rtmp://host/live?token=…/KEY is how some tools put it).
    const appQ = this.publisher.app.indexOf('?');
    if (appQ >= 0) {
      for (const [k, v] of new URLSearchParams(this.publisher.app.slice(appQ + 1))) {
        if (!this.publisher.query.has(k)) this.publisher.query.set(k, v);
      }
      this.publisher.app = this.publisher.app.slice(0, appQ);
    }
    this.publishing = true;
    clearTimeout(this.setupTimer);
    this.opts.onPublish(this.publisher).then(
      () => {
        if (this.closed) return;
        this.sendStatus('status', 'NetStream.Publish.Start', `${this.publisher.name} is now published`);
      },
      (err: Error) => {
        const code = err instanceof RtmpRefusal ? err.code : 'NetStream.Publish.Failed';
        this.sendStatus('error', code, err.message);
        this.close(`publish refused: ${err.message}`);
      },
    );
  }

  private refuseMedia(reason: string): void {
    this.log.warn(
      { remote: this.publisher.remote, stream: this.publisher.name, reason },
      'RTMP media refused',
    );
    this.sendStatus('error', 'NetStream.Publish.Failed', reason);
    this.close(reason);
  }

  private sendStatus(level: string, code: string, description: string): void {
    this.sendCommand(STREAM_ID, ['onStatus', 0, null, { level, code, description }]);
  }

  private sendCommand(streamId: number, values: Amf0Value[]): void {
    this.sendMessage(3, MSG.commandAmf0, streamId, encodeAmf0(...values));
  }

  private sendControl(type: number, body: Buffer): void {
    this.sendMessage(2, type, 0, body);
  }

  private sendMessage(csid: number, type: number, streamId: number, body: Buffer): void {
    if (this.closed || this.socket.destroyed) return;
    // Control messages go out before SetChunkSize takes effect at the peer: 128 until then.
    const chunk = type === MSG.setChunkSize || !this.sentChunkSize ? 128 : OUT_CHUNK_SIZE;
    const header = Buffer.alloc(12);
    header[0] = csid; // fmt 0
    header.writeUIntBE(0, 1, 3);
    header.writeUIntBE(body.length, 4, 3);
    header[7] = type;
    header.writeUInt32LE(streamId, 8);
    const parts: Buffer[] = [header];
    for (let at = 0; at < body.length; at += chunk) {
      if (at > 0) parts.push(Buffer.from([0xc0 | csid]));
      parts.push(body.subarray(at, at + chunk));
    }
    this.socket.write(Buffer.concat(parts));
    if (type === MSG.setChunkSize) this.sentChunkSize = true;
  }

  private sentChunkSize = false;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

export class RtmpServer {
  private readonly server: Server;
  private readonly connections = new Set<Connection>();

  constructor(opts: RtmpServerOptions) {
    this.server = createServer((socket) => {
      const conn = new Connection(socket, opts, opts.logger);
      this.connections.add(conn);
      socket.on('close', () => this.connections.delete(conn));
    });
  }

  /** Listens on host:port (port 0: any); resolves with the port. */
  listen(port: number, host: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        const addr = this.server.address();
        resolve(typeof addr === 'object' && addr ? addr.port : port);
      });
    });
  }

  async close(): Promise<void> {
    for (const c of this.connections) c.close('gateway shutting down');
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
