// A quick look at a pushed segment before anyone is paid to transcode it, standing in for
// go-livepeer's ffmpeg.GetCodecInfoBytes (server/mediaserver.go HandlePush: 422 when the codec
// cannot be read or is unknown). MPEG-TS: the PAT and PMT are read and a video stream of a codec
// orchestrators decode must be listed. MP4: the file must start with an ISO BMFF box.

/** PMT stream_type → codec, for the video codecs go-livepeer takes (ffmpeg.FfmpegNameToVideoCodec). */
const VIDEO_STREAM_TYPES: Record<number, string> = { 27: 'h264', 36: 'hevc' };
/** Video stream types that exist but no orchestrator decodes from MPEG-TS here. */
const OTHER_VIDEO_TYPES: Record<number, string> = {
  1: 'MPEG-1 video',
  2: 'MPEG-2 video',
  16: 'MPEG-4 part 2',
  51: 'VVC',
};
const MP4_BOXES = new Set(['ftyp', 'styp', 'moov', 'moof', 'free', 'skip', 'wide', 'mdat']);
const TS_PACKET = 188;
/** PSI is at the start of a segment; don't walk a whole large body to find it. */
const MAX_PACKETS_SCANNED = 2000;

export type SegmentProbe = { ok: true; video?: string } | { ok: false; reason: string };

export function probeSegment(format: 'mpegts' | 'mp4', body: Uint8Array): SegmentProbe {
  if (format === 'mp4') {
    const box = body.length >= 8 ? Buffer.from(body.subarray(4, 8)).toString('latin1') : '';
    return MP4_BOXES.has(box)
      ? { ok: true }
      : { ok: false, reason: 'the body is not MP4 (no ftyp/moov/moof box at its start)' };
  }
  return probeTs(body);
}

function probeTs(body: Uint8Array): SegmentProbe {
  if (body.length < TS_PACKET || body[0] !== 0x47) {
    return { ok: false, reason: 'the body is not MPEG-TS (it does not start with a 0x47 sync byte)' };
  }
  let pmtPid: number | undefined;
  const packets = Math.min(Math.floor(body.length / TS_PACKET), MAX_PACKETS_SCANNED);
  for (let n = 0; n < packets; n++) {
    const p = n * TS_PACKET;
    if (body[p] !== 0x47)
      return { ok: false, reason: `the body is not MPEG-TS (sync byte lost at packet ${n})` };
    const pid = ((body[p + 1]! & 0x1f) << 8) | body[p + 2]!;
    const unitStart = (body[p + 1]! & 0x40) !== 0;
    if (!unitStart || (pid !== 0 && pid !== pmtPid)) continue;
    const section = psiSection(body, p);
    if (!section) continue;
    if (pid === 0 && section.tableId === 0x00) pmtPid = firstPmtPid(section.data);
    else if (pid === pmtPid && section.tableId === 0x02) return videoOf(section.data);
  }
  if (pmtPid === undefined) return { ok: false, reason: 'the body is MPEG-TS without a program table (PAT)' };
  return { ok: false, reason: 'the body is MPEG-TS without a stream table (PMT)' };
}

/** The section that starts in this packet (pointer field honoured), or undefined if malformed. */
function psiSection(body: Uint8Array, p: number): { tableId: number; data: Uint8Array } | undefined {
  let i = p + 4;
  const adaptation = (body[p + 3]! >> 4) & 0x3;
  if (adaptation === 2) return undefined;
  if (adaptation === 3) i += 1 + body[i]!;
  i += 1 + body[i]!; // pointer_field
  const end = p + TS_PACKET;
  if (i + 3 > end) return undefined;
  const tableId = body[i]!;
  const length = ((body[i + 1]! & 0x0f) << 8) | body[i + 2]!;
  // Sections longer than one packet are not followed: a PMT with a video stream fits in one.
  return { tableId, data: body.subarray(i, Math.min(end, i + 3 + length)) };
}

function firstPmtPid(pat: Uint8Array): number | undefined {
  for (let i = 8; i + 4 <= pat.length - 4; i += 4) {
    const program = (pat[i]! << 8) | pat[i + 1]!;
    if (program !== 0) return ((pat[i + 2]! & 0x1f) << 8) | pat[i + 3]!;
  }
  return undefined;
}

function videoOf(pmt: Uint8Array): SegmentProbe {
  const infoLength = ((pmt[10]! & 0x0f) << 8) | pmt[11]!;
  const types: number[] = [];
  for (let i = 12 + infoLength; i + 5 <= pmt.length - 4; ) {
    types.push(pmt[i]!);
    i += 5 + (((pmt[i + 3]! & 0x0f) << 8) | pmt[i + 4]!);
  }
  for (const t of types) if (VIDEO_STREAM_TYPES[t]) return { ok: true, video: VIDEO_STREAM_TYPES[t] };
  const other = types.find((t) => OTHER_VIDEO_TYPES[t]);
  if (other !== undefined) {
    return { ok: false, reason: `the segment's video is ${OTHER_VIDEO_TYPES[other]}; push H.264 or HEVC` };
  }
  return { ok: false, reason: 'the segment has no video stream' };
}
