// No single offer may hold the event loop for long: the costliest offers that fit the limits are
// checked, rewritten and answered by werift here, and their cost measured.
//
// The machine running the tests is shared and often loaded, so wall-clock gaps there measure the
// scheduler as much as us. What is asserted is CPU time, best of a few runs: the whole answer's CPU
// (every synchronous stretch of it together) bounds the longest stretch, and CPU time does not grow
// when the process waits for a core. bench:live measures the wall-clock event-loop delay while
// such offers arrive during live streams.
import { describe, expect, it } from 'vitest';
import { checkOffer, EgressPeer, IngestPeer, LOOPBACK_NETWORK, SDP_LIMITS } from '../../src/webrtc/index.ts';
import { parseSdp } from '../../src/webrtc/sdp.ts';
import { worstCaseOffers } from '../helpers/sdp-worst-cases.ts';

/** The budget for one offer: nothing else runs on the loop for this long. */
const BUDGET_MS = 20;
const cases = worstCaseOffers();
const cpuMs = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
};

/** Best of `runs`: the cost with the least interference (GC of earlier work, JIT, other threads). */
async function best(runs: number, measure: () => Promise<number> | number): Promise<number> {
  let min = Number.POSITIVE_INFINITY;
  for (let i = 0; i < runs; i++) min = Math.min(min, await measure());
  return min;
}

describe(`worst-case offers at the limits (${SDP_LIMITS.maxBytes} bytes, ${SDP_LIMITS.maxLines} lines)`, () => {
  it('the worst cases really are at the limits', () => {
    for (const c of cases) {
      const bytes = Buffer.byteLength(c.sdp);
      const lines = c.sdp.split('\r\n').length - 1;
      expect(bytes <= SDP_LIMITS.maxBytes && lines <= SDP_LIMITS.maxLines, c.name).toBe(true);
      expect(bytes > SDP_LIMITS.maxBytes * 0.95 || lines > SDP_LIMITS.maxLines * 0.95, c.name).toBe(true);
      expect(checkOffer(c.sdp, 'publish').ok, c.name).toBe(c.accepted);
    }
  });

  it.each(cases.map((c) => [c.name, c] as const))(
    'checking %s takes a few milliseconds (linear)',
    async (_, c) => {
      const ms = await best(7, () => {
        const started = cpuMs();
        // parseSdp, not planOffer: planOffer remembers its last answer.
        try {
          parseSdp(c.sdp);
        } catch {
          // A refused one costs up to where it is refused.
        }
        return cpuMs() - started;
      });
      // A parser that went quadratic on 65 kB / 2000 lines would take hundreds of ms; a loaded
      // machine adds a few ms of other threads' CPU (GC, workers) to process.cpuUsage().
      expect(ms).toBeLessThan(BUDGET_MS);
    },
  );

  it.each(cases.filter((c) => c.accepted).map((c) => [c.name, c] as const))(
    `answering %s (check + werift) costs under ${BUDGET_MS} ms of CPU in all`,
    async (_, c) => {
      // Warm up werift and the parser: the first answer of a process pays for JIT compilation.
      await (await IngestPeer.create(c.sdp, LOOPBACK_NETWORK)).close();
      const view = c.sdp.replaceAll('a=sendonly', 'a=recvonly');
      for (const [purpose, offer] of [
        ['publish', c.sdp],
        ['view', view],
      ] as const) {
        const ms = await best(3, async () => {
          const started = cpuMs();
          expect(checkOffer(offer, purpose).ok).toBe(true);
          const peer =
            purpose === 'publish'
              ? await IngestPeer.create(offer, LOOPBACK_NETWORK)
              : await EgressPeer.create(offer, LOOPBACK_NETWORK);
          const spent = cpuMs() - started;
          await peer.close();
          return spent;
        });
        expect(ms, purpose).toBeLessThan(BUDGET_MS);
      }
    },
    30_000,
  );
});
