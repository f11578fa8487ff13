// Choosing among the orchestrators that can run a live job (right model, price under the
// ceiling, not suspended). The score, for n candidates:
//
//   price_i   = exp(−2 · (p_i − p_min) / p_mean)      p: wei per pixel; 1 for all when p_mean = 0
//   latency_i = exp(−(l_i − l_min) / (l_min + 100))   l: GetOrchestrator round trip in ms
//                                                      (an unmeasured one counts as the mean)
//   stake_i   = 0.5 + 0.5 · s_i / s_max               when some candidate's stake is known
//                                                      (unknown = 0); 1 for all otherwise
//   score_i   = price_i · latency_i · stake_i          in (0, 1]
//
//   P(i)      = 0.9 · score_i / Σ score  +  0.1 / n
//
// so the cheapest, fastest one has price and latency terms of 1; a candidate priced at the
// mean above the cheapest weighs e^−2 ≈ 0.14 of it; 100 ms slower than a ~0 ms one weighs
// e^−1; stake can at most halve a weight; and a tenth of all picks is uniform, which spreads
// load and keeps every candidate's latency measured. Candidates are ordered by drawing without
// replacement with these probabilities (recomputed over those left), so a failed first choice
// falls back to the next draw.
import type { OrchestratorInfo } from '../wire/lp-rpc.ts';

export interface SelectedOrchestrator {
  url: string;
  /** The fresh GetOrchestrator answer (with the live job's capabilities): auth token, price, ticket params. */
  info: OrchestratorInfo;
}

export class NoOrchestratorError extends Error {
  constructor(
    readonly modelId: string,
    /** One line per orchestrator: `url: why it was not used`. */
    readonly reasons: string[],
    /** What was asked for, for the message: `model "x"` for live, `TextToImage "x"`, `H264`. */
    readonly job = `model "${modelId}"`,
  ) {
    super(
      reasons.length
        ? `no orchestrator can run ${job}: ${reasons.join('; ')}`
        : `no orchestrator is configured for ${job}`,
    );
    this.name = 'NoOrchestratorError';
  }
}

export interface Candidate {
  url: string;
  /** Wei per pixel, as a float (only ever compared relatively). */
  pricePerPixel: number;
  latencyMs?: number;
  stake?: bigint;
}

export const SCORE = {
  priceSensitivity: 2,
  latencyScaleMs: 100,
  stakeShare: 0.5,
  randomShare: 0.1,
} as const;

/** score_i of the formula above, for each candidate. */
export function scores(cands: readonly Candidate[]): number[] {
  if (cands.length === 0) return [];
  const prices = cands.map((c) => c.pricePerPixel);
  const pMin = Math.min(...prices);
  const pMean = prices.reduce((a, b) => a + b, 0) / prices.length;
  const measured = cands.map((c) => c.latencyMs).filter((l): l is number => l !== undefined);
  const lMean = measured.length ? measured.reduce((a, b) => a + b, 0) / measured.length : 0;
  const lat = cands.map((c) => c.latencyMs ?? lMean);
  const lMin = Math.min(...lat);
  const stakes = cands.map((c) => c.stake);
  const sMax = stakes.reduce<bigint>((m, s) => (s !== undefined && s > m ? s : m), 0n);
  const anyStake = stakes.some((s) => s !== undefined);
  return cands.map((c, i) => {
    const price = pMean > 0 ? Math.exp((-SCORE.priceSensitivity * (c.pricePerPixel - pMin)) / pMean) : 1;
    const latency = Math.exp(-(lat[i] - lMin) / (lMin + SCORE.latencyScaleMs));
    let stake = 1;
    if (anyStake) {
      const share = sMax > 0n ? Number(((c.stake ?? 0n) * 1_000_000n) / sMax) / 1_000_000 : 0;
      stake = 1 - SCORE.stakeShare + SCORE.stakeShare * share;
    }
    return price * latency * stake;
  });
}

/** P(i) of the formula above. Sums to 1. */
export function probabilities(cands: readonly Candidate[]): number[] {
  const s = scores(cands);
  const total = s.reduce((a, b) => a + b, 0);
  const n = cands.length;
  return s.map((x) => (1 - SCORE.randomShare) * (total > 0 ? x / total : 1 / n) + SCORE.randomShare / n);
}

/** All candidates, in the order to try them: weighted draws without replacement. */
export function drawOrder<C extends Candidate>(cands: readonly C[], random: () => number): C[] {
  const left = [...cands];
  const order: C[] = [];
  while (left.length > 0) {
    const p = probabilities(left);
    const r = random();
    let i = 0;
    let acc = p[0];
    while (i < left.length - 1 && r >= acc) acc += p[++i];
    order.push(left.splice(i, 1)[0]);
  }
  return order;
}
