/**
 * Loaded by mocha before every spec (.mocharc.json "require"): makes every
 * fast-check property deterministic. The seed is SARU_FC_SEED when set (run
 * with other seeds to fuzz wider), otherwise a fixed one; fast-check prints
 * the seed and path of any failure, and the same seed replays it.
 */
import fc from 'fast-check';

const fromEnv = process.env.SARU_FC_SEED;
const seed = fromEnv !== undefined && fromEnv !== '' ? Number(fromEnv) : 0x5a20;
if (!Number.isInteger(seed)) throw new Error(`SARU_FC_SEED must be an integer, got "${fromEnv}"`);
fc.configureGlobal({ seed });
