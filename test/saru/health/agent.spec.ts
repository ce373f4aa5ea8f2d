import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { Fwd, ManualClock, Proto, type CheckOutcome, type ConfiguredService, type ReconcileResult, type ServiceInitPair, type Timers } from '../../../core/index.js';
import { formatHealth } from '../../../saru/adm-format.js';
import { HealthAgent } from '../../../saru/health/agent.js';
import { createLogger } from '../../../saru/log.js';

/** Timers that fire only when the test says (no wall clock). */
class StepTimers implements Timers {
  private readonly due = new Map<number, () => void>();
  private seq = 0;
  setTimeout(fn: () => void): unknown {
    this.due.set(++this.seq, fn);
    return this.seq;
  }
  clearTimeout(h: unknown): void {
    this.due.delete(h as number);
  }
  get pending(): number {
    return this.due.size;
  }
}

async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

const SVC: ConfiguredService = {
  service: { protocol: Proto.TCP, address: '198.18.0.100', port: 80, scheduler: 'rr' },
  realServers: [
    { address: '198.18.0.101', port: 80, weight: 1, fwd: Fwd.DR },
    { address: '198.18.0.102', port: 80, weight: 1, fwd: Fwd.DR },
  ],
  health: {
    quiescent: true,
    checks: [0, 1].map(() => [{ spec: { kind: 'connect', protocol: 'tcp', timeoutMs: 1000 }, intervalMs: 1000, attempts: 1, retryDelayMs: 0, failureCount: 1 }]),
  },
  file: 'x.cf',
  line: 1,
};

function harness(enabled = true) {
  const out = new PassThrough();
  const logs: Array<Record<string, unknown>> = [];
  out.on('data', (d: Buffer) => logs.push(...d.toString().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>)));
  const answers = new Map<string, CheckOutcome>();
  const applied: ServiceInitPair[][] = [];
  let release: (() => void) | null = null;
  const agent = new HealthAgent(
    { enabled, maxParallel: 4 },
    {
      log: createLogger({ name: 'saru', facility: 'daemon', destination: out }),
      run: (_spec, t) => Promise.resolve(answers.get(t.address) ?? { ok: true, reason: 'connected' }),
      apply: async (s) => {
        applied.push(s);
        if (release === null) await new Promise<void>((r) => (release = r));
        return { added: [], removed: [], updated: ['TCP 198.18.0.100:80'], unchanged: [] } as ReconcileResult;
      },
      clock: new ManualClock(0),
      timers: new StepTimers(),
    },
  );
  return { agent, answers, applied, logs, out, releaseFirst: () => release?.() };
}

describe('saru/health HealthAgent', () => {
  it('logs a real server going down with its reason, and applies the quiesced weights once', async () => {
    const h = harness();
    h.answers.set('198.18.0.102', { ok: false, reason: 'connect refused' });
    assert.equal(h.agent.setServices([SVC]).length, 1);
    h.agent.start();
    await settle();
    const down = h.logs.find((l) => l.msg === 'real server down');
    assert.ok(down, JSON.stringify(h.logs));
    assert.equal(down.realServer, '198.18.0.102:80');
    assert.equal(down.reason, 'connect refused');
    assert.equal(down.component, 'health');
    assert.equal(h.applied.length, 1);
    assert.deepEqual(h.applied[0]![0]!.realServers.map((r) => r.weight), [1, 0]);
    h.agent.stop();
  });

  it('serialises applies: while one runs, later changes share one queued apply that reads the state when it runs', async () => {
    const h = harness();
    h.agent.setServices([SVC]);
    const a = h.agent.apply(); // runs, blocked in deps.apply
    await settle();
    const b = h.agent.apply();
    const c = h.agent.apply();
    assert.equal(b, c, 'one queued apply');
    assert.equal(h.applied.length, 1);
    h.releaseFirst();
    await Promise.all([a, b]);
    assert.equal(h.applied.length, 2);
  });

  it('disabled (health_checks = no): every real server as configured, no checks, says so in --health', async () => {
    const h = harness(false);
    h.answers.set('198.18.0.101', { ok: false, reason: 'x' });
    const eff = h.agent.setServices([SVC]);
    h.agent.start();
    await settle();
    assert.deepEqual(eff[0]!.realServers.map((r) => r.weight), [1, 1]);
    assert.deepEqual(h.agent.status(), []);
    assert.equal(h.agent.counters.tries, 0);
    assert.match(formatHealth([], 0, false), /off/);
  });

  it('formats saruadm --health', () => {
    const text = formatHealth(
      [
        { service: 'TCP 198.18.0.100:80', realServer: '198.18.0.101:80', up: true, since: 0, checks: [{ check: 'http#0', up: true, failures: 0, lastReason: 'status 200', rounds: 3 }] },
        { service: 'TCP 198.18.0.100:80', realServer: '198.18.0.102:80', up: false, since: 4000, weight: 5, checks: [{ check: 'connect#0', up: false, failures: 2, lastReason: 'connect refused', rounds: 9 }] },
      ],
      12_000,
      true,
    );
    const lines = text.trimEnd().split('\n');
    assert.equal(lines.length, 3);
    assert.match(lines[0]!, /^Virtual service +Real server +State +Since +Weight +Checks$/);
    assert.match(lines[1]!, /^TCP 198\.18\.0\.100:80 +198\.18\.0\.101:80 +UP +12s +- +http#0 up \(status 200\)$/);
    assert.match(lines[2]!, /198\.18\.0\.102:80 +DOWN +8000ms +5 +connect#0 DOWN \(connect refused, 2 failed\)$/);
  });
});
