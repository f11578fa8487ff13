// Client side of RFC 9725 PATCH for werift test peers: offers without candidates, trickling them
// afterwards, and ICE restarts with a new ufrag/pwd, as a WHIP/WHEP client does them.
import {
  candidateFromSdp,
  candidateToSdp,
  RTCIceParameters,
  type RTCIceTransport,
  type RTCPeerConnection,
  type RTCPeerConnectionConfig,
} from 'werift';
import { parseSdpFrag } from '../../src/webrtc/sdpfrag.ts';

export const SDPFRAG = 'application/trickle-ice-sdpfrag';

/** The SDP without its candidates (and end-of-candidates); `keep` spares the ones it returns true for. */
export function withoutCandidates(sdp: string, keep: (line: string) => boolean = () => false): string {
  return sdp
    .split('\r\n')
    .filter((l) => !(l.startsWith('a=candidate:') && !keep(l)) && l !== 'a=end-of-candidates')
    .join('\r\n');
}

/** `a=candidate:` values of an SDP, once each (werift repeats them in every bundled section). */
export function candidatesOf(sdp: string): string[] {
  const lines = sdp.split('\r\n').filter((l) => l.startsWith('a=candidate:'));
  return [...new Set(lines.map((l) => l.slice('a=candidate:'.length)))];
}

export function iceCredentialsOf(sdp: string): { ufrag: string; pwd: string } {
  const ufrag = /^a=ice-ufrag:(.+)$/m.exec(sdp)?.[1]?.trim();
  const pwd = /^a=ice-pwd:(.+)$/m.exec(sdp)?.[1]?.trim();
  if (!ufrag || !pwd) throw new Error('SDP without ICE credentials');
  return { ufrag, pwd };
}

/** An RFC 8840 fragment as RFC 9725 shows it: the tag m-line, its mid, credentials, candidates. */
export function sdpFragment(opts: {
  ufrag: string;
  pwd: string;
  candidates: string[];
  mid?: string;
  end?: boolean;
}): string {
  const lines = ['m=video 9 UDP/TLS/RTP/SAVPF 96', `a=mid:${opts.mid ?? '0'}`];
  lines.push(`a=ice-ufrag:${opts.ufrag}`, `a=ice-pwd:${opts.pwd}`);
  for (const c of opts.candidates) lines.push(`a=candidate:${c}`);
  if (opts.end ?? true) lines.push('a=end-of-candidates');
  return `${lines.join('\r\n')}\r\n`;
}

export function patch(
  url: string,
  body: string,
  headers: Record<string, string | undefined> = {},
): Promise<Response> {
  const h: Record<string, string> = { 'content-type': SDPFRAG };
  for (const [k, v] of Object.entries(headers)) {
    if (v === undefined) delete h[k];
    else h[k] = v;
  }
  return fetch(url, { method: 'PATCH', headers: h, body });
}

export function bundleTransport(pc: RTCPeerConnection): RTCIceTransport {
  const [transport] = pc.iceTransports;
  if (!transport || pc.iceTransports.length !== 1) throw new Error('expected one bundled ICE transport');
  return transport;
}

/** Resolves when the ICE transport reports `connected` (or rejects after `timeoutMs`). */
export function iceConnected(transport: RTCIceTransport, timeoutMs = 10_000): Promise<void> {
  if (transport.state === 'connected') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      unSubscribe();
      reject(new Error(`ICE not connected after ${timeoutMs} ms (state ${transport.state})`));
    }, timeoutMs);
    const { unSubscribe } = transport.onStateChange.subscribe((state) => {
      if (state === 'connected') {
        clearTimeout(timer);
        unSubscribe();
        resolve();
      }
    });
  });
}

export interface RestartResult {
  response: Response;
  etag: string | null;
  /** The server's new credentials, as its 200 fragment gave them. */
  server: { ufrag?: string; pwd?: string; candidates: number };
  /** Resolves once the client's ICE agent is connected on the new credentials. */
  connected: Promise<void>;
}

/**
 * RFC 9725 §4.3.3 from the client: new local ufrag/pwd (werift's restart keeps its sockets), a
 * PATCH with If-Match: * carrying them and our candidates, and the server's 200 fragment applied
 * to the ICE agent. werift's own offerer never restarts ICE while DTLS is up (its connect() returns
 * early), so the agent is driven directly, as a browser's ICE agent would be by setRemoteDescription.
 */
export async function restartIce(
  pc: RTCPeerConnection,
  resourceUrl: string,
  headers: Record<string, string> = {},
): Promise<RestartResult> {
  const transport = bundleTransport(pc);
  transport.restart();
  await transport.gather();
  const local = transport.localParameters;
  const body = sdpFragment({
    ufrag: local.usernameFragment!,
    pwd: local.password!,
    candidates: transport.localCandidates.map((c) => candidateToSdp(c)),
  });
  const response = await patch(resourceUrl, body, { 'if-match': '*', ...headers });
  if (response.status !== 200) {
    const connected = Promise.reject(new Error(`PATCH answered ${response.status}`));
    connected.catch(() => {}); // only a caller that waits for it hears about it
    return { response, etag: null, server: { candidates: 0 }, connected };
  }
  const fragment = parseSdpFrag(await response.text());
  transport.setRemoteParams(
    new RTCIceParameters({ usernameFragment: fragment.ufrag, password: fragment.pwd, iceLite: false }),
  );
  for (const c of fragment.candidates) await transport.addRemoteCandidate(candidateFromSdp(c.sdp));
  const connected = iceConnected(transport);
  transport.start().catch(() => {});
  return {
    response,
    etag: response.headers.get('etag'),
    server: { ufrag: fragment.ufrag, pwd: fragment.pwd, candidates: fragment.candidates.length },
    connected,
  };
}

/** werift settings for a client that may only use ICE-TCP: its UDP socket exists but stays idle. */
export const TCP_ONLY: Partial<RTCPeerConnectionConfig> = {
  iceUseTcp: true,
  iceFilterCandidatePair: (pair) => pair.localCandidate.transport.toLowerCase() === 'tcp',
  iceFilterStunResponse: (_message, _addr, protocol) =>
    protocol.localCandidate?.transport.toLowerCase() === 'tcp',
};

const isTcpCandidate = (line: string) => / tcp /i.test(line);

/**
 * WHIP/WHEP with every UDP candidate taken out of the offer and the answer: the only path left is
 * ICE-TCP (our active candidate to the gateway's passive one).
 */
export async function connectTcpOnly(
  pc: RTCPeerConnection,
  url: string,
  timeoutMs = 10_000,
): Promise<{ resourceUrl: string; answerSdp: string }> {
  await pc.setLocalDescription(await pc.createOffer());
  const offer = withoutCandidates(pc.localDescription!.sdp, isTcpCandidate);
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/sdp' },
    body: offer,
  });
  const answerSdp = await response.text();
  if (response.status !== 201) throw new Error(`POST ${url}: ${response.status} ${answerSdp}`);
  await pc.setRemoteDescription({ type: 'answer', sdp: withoutCandidates(answerSdp, isTcpCandidate) });
  const deadline = Date.now() + timeoutMs;
  while (pc.connectionState !== 'connected') {
    if (Date.now() > deadline) throw new Error(`not connected over TCP (state ${pc.connectionState})`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return { resourceUrl: new URL(response.headers.get('location')!, url).toString(), answerSdp };
}

/** The transport ('udp' | 'tcp') of the candidate pair ICE selected, from the client's side. */
export function selectedTransport(pc: RTCPeerConnection): string | undefined {
  return bundleTransport(pc).connection.nominated?.localCandidate.transport.toLowerCase();
}
