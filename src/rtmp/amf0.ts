// AMF0, the value encoding of RTMP commands (connect, createStream, publish, onStatus…): the
// types those commands use; anything else ends the decode with an error.
export type Amf0Value = number | boolean | string | null | undefined | Amf0Object | Amf0Value[] | Date;
export interface Amf0Object {
  [key: string]: Amf0Value;
}

const NUMBER = 0x00;
const BOOLEAN = 0x01;
const STRING = 0x02;
const OBJECT = 0x03;
const NULL = 0x05;
const UNDEFINED = 0x06;
const ECMA_ARRAY = 0x08;
const OBJECT_END = 0x09;
const STRICT_ARRAY = 0x0a;
const DATE = 0x0b;
const LONG_STRING = 0x0c;

export class Amf0Error extends Error {}

/** Decodes every value in the buffer (a command message is a sequence of them). */
export function decodeAmf0(buf: Buffer): Amf0Value[] {
  const out: Amf0Value[] = [];
  const pos = { at: 0 };
  while (pos.at < buf.length) out.push(readValue(buf, pos, 0));
  return out;
}

function need(buf: Buffer, pos: { at: number }, n: number): void {
  if (pos.at + n > buf.length) throw new Amf0Error('AMF0 value runs past the message');
}

function readString(buf: Buffer, pos: { at: number }, long: boolean): string {
  need(buf, pos, long ? 4 : 2);
  const len = long ? buf.readUInt32BE(pos.at) : buf.readUInt16BE(pos.at);
  pos.at += long ? 4 : 2;
  need(buf, pos, len);
  const s = buf.toString('utf8', pos.at, pos.at + len);
  pos.at += len;
  return s;
}

function readProperties(buf: Buffer, pos: { at: number }, depth: number): Amf0Object {
  const obj: Amf0Object = {};
  for (;;) {
    const key = readString(buf, pos, false);
    need(buf, pos, 1);
    if (key === '' && buf[pos.at] === OBJECT_END) {
      pos.at++;
      return obj;
    }
    obj[key] = readValue(buf, pos, depth + 1);
  }
}

function readValue(buf: Buffer, pos: { at: number }, depth: number): Amf0Value {
  if (depth > 16) throw new Amf0Error('AMF0 nested too deep');
  need(buf, pos, 1);
  const type = buf[pos.at++];
  switch (type) {
    case NUMBER:
      need(buf, pos, 8);
      pos.at += 8;
      return buf.readDoubleBE(pos.at - 8);
    case BOOLEAN:
      need(buf, pos, 1);
      return buf[pos.at++] !== 0;
    case STRING:
      return readString(buf, pos, false);
    case LONG_STRING:
      return readString(buf, pos, true);
    case OBJECT:
      return readProperties(buf, pos, depth);
    case ECMA_ARRAY:
      need(buf, pos, 4);
      pos.at += 4; // the count is advisory: the properties end with the end marker
      return readProperties(buf, pos, depth);
    case STRICT_ARRAY: {
      need(buf, pos, 4);
      const n = buf.readUInt32BE(pos.at);
      pos.at += 4;
      const arr: Amf0Value[] = [];
      for (let i = 0; i < n; i++) arr.push(readValue(buf, pos, depth + 1));
      return arr;
    }
    case DATE:
      need(buf, pos, 10);
      pos.at += 10;
      return new Date(buf.readDoubleBE(pos.at - 10));
    case NULL:
      return null;
    case UNDEFINED:
      return undefined;
    default:
      throw new Amf0Error(`AMF0 type 0x${(type ?? 0).toString(16)} not supported`);
  }
}

export function encodeAmf0(...values: Amf0Value[]): Buffer {
  const parts: Buffer[] = [];
  for (const v of values) writeValue(parts, v);
  return Buffer.concat(parts);
}

function writeString(parts: Buffer[], s: string): void {
  const b = Buffer.from(s, 'utf8');
  const len = Buffer.alloc(2);
  len.writeUInt16BE(b.length);
  parts.push(len, b);
}

function writeValue(parts: Buffer[], v: Amf0Value): void {
  if (typeof v === 'number') {
    const b = Buffer.alloc(9);
    b[0] = NUMBER;
    b.writeDoubleBE(v, 1);
    parts.push(b);
  } else if (typeof v === 'boolean') {
    parts.push(Buffer.from([BOOLEAN, v ? 1 : 0]));
  } else if (typeof v === 'string') {
    parts.push(Buffer.from([STRING]));
    writeString(parts, v);
  } else if (v === null) {
    parts.push(Buffer.from([NULL]));
  } else if (v === undefined) {
    parts.push(Buffer.from([UNDEFINED]));
  } else if (typeof v === 'object' && !Array.isArray(v) && !(v instanceof Date)) {
    parts.push(Buffer.from([OBJECT]));
    for (const [k, val] of Object.entries(v)) {
      writeString(parts, k);
      writeValue(parts, val);
    }
    parts.push(Buffer.from([0, 0, OBJECT_END]));
  } else {
    throw new Amf0Error('AMF0 encoder: arrays and dates are not needed here');
  }
}
