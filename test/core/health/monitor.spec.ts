import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Fwd, HealthMonitor, ManualClock, Proto, type CheckOutcome, type CheckSpec, type CheckTarget, type ConfiguredService, type HealthEvent, type RealServerCheck, type Timers } from '../../../core/index.js';

/** Virtual timers on a ManualClock: advance() fires what is due, in order, letting promises settle between. */
class VirtualTimers implements Timers {
  private seq = 0;
  private readonly due = new Map<number, { at: number; fn: () => void; order: number }>();
  constructor(readonly clock: ManualClock) {}
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.due.set(id, { at: this.clock.now() + ms, fn, order: id });
    return id;
  }
  clearTimeout(h: unknown): void {
    this.due.delete(h as number);
  }
  get pending(): number {
    return this.due.size;
  }
  async advance(ms: number): Promise<void> {
    const end = this.clock.now() + ms;
    await settle();
    for (;;) {
      let next: [number, { at: number; fn: () => void; order: number }] | undefined;
      for (const e of this.due) if (e[1].at <= end && (!next || e[1].at < next[1].at || (e[1].at === next[1].at && e[1].order < next[1].order))) next = e;
      if (!next) break;
      this.due.delete(next[0]);
      this.clock.set(Math.max(this.clock.now(), next[1].at));
      next[1].fn();
      await settle();
    }
    this.clock.set(end);
    await settle();
  }
}

async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}

/**
 * A fake checker that keeps state: per address, a scripted answer (up/down,
 * optional weight), or a pending promise the test resolves by hand ("hang").
 * It records every try with its time.
 */
class FakeChecker {
  readonly tries: Array<{ at: number; address: string; kind: string }> = [];
  readonly answers = new Map<string, CheckOutcome | 'hang'>();
  readonly hanging: Array<{ address: string; resolve: (o: CheckOutcome) => void; signal: AbortSignal }> = [];
  inFlight = 0;
  maxInFlight = 0;
  constructor(private readonly clock: ManualClock) {}
  run = (spec: Exclude<CheckSpec, { kind: 'on' | 'off' }>, t: CheckTarget, signal: AbortSignal): Promise<CheckOutcome> => {
    this.tries.push({ at: this.clock.now(), address: t.address, kind: spec.kind });
    const a = this.answers.get(t.address) ?? { ok: true, reason: 'ok' };
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    const done = (o: CheckOutcome): CheckOutcome => {
      this.inFlight--;
      return o;
    };
    if (a === 'hang') {
      return new Promise((resolve) => {
        const h = { address: t.address, resolve: (o: CheckOutcome) => resolve(done(o)), signal };
        this.hanging.push(h);
        signal.addEventListener('abort', () => h.resolve({ ok: false, reason: 'aborted' }));
      });
    }
    return Promise.resolve(done(a));
  };
  triesOf(address: string): number[] {
    return this.tries.filter((t) => t.address === address).map((t) => t.at);
  }
}

const RS = ['198.18.0.101', '198.18.0.102', '198.18.0.103'];
const connect: CheckSpec = { kind: 'connect', protocol: 'tcp', timeoutMs: 1000 };

function check(over: Partial<RealServerCheck> = {}): RealServerCheck {
  return { spec: connect, intervalMs: 10_000, attempts: 1, retryDelayMs: 0, failureCount: 1, ...over };
}

function service(opts: { quiescent?: boolean; checks?: RealServerCheck[][]; servers?: number; startDown?: boolean; port?: number } = {}): ConfiguredService {
  const n = opts.servers ?? 3;
  return {
    service: { protocol: Proto.TCP, address: '198.18.0.100', port: opts.port ?? 80, scheduler: 'rr', fallback: { address: '198.18.0.200', port: 80, fwd: Fwd.DR } },
    realServers: RS.slice(0, n).map((address) => ({ address, port: 80, weight: 2, fwd: Fwd.DR })),
    health: { quiescent: opts.quiescent ?? true, checks: opts.checks ?? RS.slice(0, n).map(() => [check()]), ...(opts.startDown ? { startDown: true } : {}) },
    file: 'test.cf',
    line: 1,
  };
}

function harness(maxParallel = 16) {
  const clock = new ManualClock(1000);
  const timers = new VirtualTimers(clock);
  const checker = new FakeChecker(clock);
  const events: HealthEvent[] = [];
  const monitor = new HealthMonitor({ maxParallel }, { clock, timers, run: checker.run, onChange: (e) => events.push(e) });
  return { clock, timers, checker, events, monitor };
}

function weights(m: HealthMonitor): Array<[string, number]> {
  return m.effectiveServices()[0]!.realServers.map((r) => [r.address, r.weight ?? 1]);
}

describe('core/health HealthMonitor', () => {
  it('runs the first round at once, then one every interval, per checker', async () => {
    const h = harness();
    h.monitor.setServices([service()]);
    h.monitor.start();
    await h.timers.advance(0);
    assert.deepEqual(h.checker.triesOf(RS[0]!), [1000]);
    await h.timers.advance(25_000);
    assert.deepEqual(h.checker.triesOf(RS[0]!), [1000, 11_000, 21_000]);
    assert.equal(h.checker.tries.length, 9);
    assert.deepEqual(h.events, [], 'nothing changed, nothing reported');
  });

  it('quiescent: a failed real server gets weight 0, and its weight back when it recovers', async () => {
    const h = harness();
    h.monitor.setServices([service({ quiescent: true })]);
    h.monitor.start();
    await h.timers.advance(0);
    assert.deepEqual(weights(h.monitor), RS.map((a) => [a, 2]));
    h.checker.answers.set(RS[1]!, { ok: false, reason: 'connect refused' });
    await h.timers.advance(10_000);
    assert.deepEqual(weights(h.monitor), [[RS[0], 2], [RS[1], 0], [RS[2], 2]]);
    assert.equal(h.monitor.effectiveServices()[0]!.service.expireNodestConn, undefined, 'quiescent: connections continue');
    assert.deepEqual(h.events.map((e) => [e.realServer, e.server, e.reason, e.at]), [[`${RS[1]}:80`, 'down', 'connect refused', 11_000]]);
    h.checker.answers.delete(RS[1]!);
    await h.timers.advance(10_000);
    assert.deepEqual(weights(h.monitor), RS.map((a) => [a, 2]));
    assert.deepEqual(h.events.at(-1)?.server, 'up');
    assert.equal(h.monitor.counters.transitions, 2);
  });

  it('quiescent=no: a failed real server leaves its service, whose connections to it are then expired', async () => {
    const h = harness();
    h.monitor.setServices([service({ quiescent: false })]);
    h.checker.answers.set(RS[0]!, { ok: false, reason: 'timeout' });
    h.monitor.start();
    await h.timers.advance(0);
    const eff = h.monitor.effectiveServices()[0]!;
    assert.deepEqual(eff.realServers.map((r) => r.address), [RS[1], RS[2]]);
    assert.equal(eff.service.expireNodestConn, true);
    assert.deepEqual(eff.service.fallback, { address: '198.18.0.200', port: 80, fwd: Fwd.DR }, 'the fallback stays configured for when all are out');
  });

  it('per-real-server quiescent overrides (keepalived inhibit_on_failure on one real_server)', async () => {
    const h = harness();
    const svc = service({ quiescent: false });
    svc.health!.quiescentPerServer = [true, false, false];
    h.monitor.setServices([svc]);
    h.checker.answers.set(RS[0]!, { ok: false, reason: 'x' });
    h.checker.answers.set(RS[1]!, { ok: false, reason: 'x' });
    h.monitor.start();
    await h.timers.advance(0);
    assert.deepEqual(weights(h.monitor), [[RS[0], 0], [RS[2], 2]]);
  });

  it('failureCount: down only after that many failed rounds in a row; a success resets the count', async () => {
    const h = harness();
    h.monitor.setServices([service({ servers: 1, checks: [[check({ failureCount: 3 })]] })]);
    const bad = { ok: false, reason: 'refused' };
    h.checker.answers.set(RS[0]!, bad);
    h.monitor.start();
    await h.timers.advance(10_000); // rounds at 1000 and 11000 fail
    h.checker.answers.delete(RS[0]!);
    await h.timers.advance(10_000); // 21000 succeeds: the count starts again
    h.checker.answers.set(RS[0]!, bad);
    await h.timers.advance(20_000); // 31000, 41000 fail
    assert.equal(h.events.length, 0, 'never three failed rounds in a row: still up');
    await h.timers.advance(10_000); // 51000: the third in a row
    assert.deepEqual(h.events.map((e) => [e.server, e.at]), [['down', 51_000]]);
    assert.equal(h.monitor.status()[0]!.checks[0]!.failures, 3);
  });

  it('a round retries `attempts` times, retryDelayMs apart, and succeeds at the first success (keepalived retry)', async () => {
    const h = harness();
    h.monitor.setServices([service({ servers: 1, checks: [[check({ attempts: 3, retryDelayMs: 2000 })]] })]);
    h.checker.answers.set(RS[0]!, { ok: false, reason: 'refused' });
    h.monitor.start();
    await h.timers.advance(3000);
    assert.deepEqual(h.checker.triesOf(RS[0]!), [1000, 3000], 'second try after the retry delay');
    assert.equal(h.events.length, 0);
    await h.timers.advance(2000);
    assert.deepEqual(h.checker.triesOf(RS[0]!), [1000, 3000, 5000]);
    assert.deepEqual(h.events.map((e) => [e.server, e.at]), [['down', 5000]]);
    // next round starts interval after the round's start (1000 + 10000)
    h.checker.answers.delete(RS[0]!);
    await h.timers.advance(6000);
    assert.deepEqual(h.checker.triesOf(RS[0]!), [1000, 3000, 5000, 11_000]);
    assert.deepEqual(h.events.map((e) => e.server), ['down', 'up']);
  });

  it('never runs more than maxParallel tries at once; the others wait their turn (ldirectord fork, bounded)', async () => {
    const h = harness(2);
    h.monitor.setServices([service({ port: 80 }), service({ port: 443 })]);
    for (const a of RS) h.checker.answers.set(a, 'hang');
    h.monitor.start();
    await h.timers.advance(0);
    assert.equal(h.checker.inFlight, 2);
    assert.equal(h.monitor.running, 2);
    assert.equal(h.monitor.counters.queued, 4);
    for (const a of RS) h.checker.answers.delete(a);
    while (h.checker.hanging.length > 0) {
      h.checker.hanging.shift()!.resolve({ ok: true, reason: 'ok' });
      await settle();
    }
    await h.timers.advance(0);
    assert.equal(h.checker.tries.length, 6, 'every checker got its first round');
    assert.equal(h.checker.maxInFlight, 2);
  });

  it('a hanging check delays only its own server: the others keep their schedule', async () => {
    const h = harness(4);
    h.monitor.setServices([service()]);
    h.checker.answers.set(RS[0]!, 'hang');
    h.monitor.start();
    await h.timers.advance(30_000);
    assert.deepEqual(h.checker.triesOf(RS[1]!), [1000, 11_000, 21_000, 31_000]);
    assert.deepEqual(h.checker.triesOf(RS[0]!), [1000]);
  });

  it('a real server with several checkers is up only while all are (keepalived)', async () => {
    const h = harness();
    const svc = service({ servers: 1, checks: [[check(), check({ spec: { kind: 'http', tls: false, method: 'GET', urls: [{ path: '/' }], timeoutMs: 1000 } })]] });
    h.monitor.setServices([svc]);
    const run = h.checker.run;
    let httpOk = true;
    h.monitor.stop();
    const m = new HealthMonitor({}, { clock: h.clock, timers: h.timers, run: (spec, t, s) => (spec.kind === 'http' ? Promise.resolve({ ok: httpOk, reason: httpOk ? 'ok' : 'status 503' }) : run(spec, t, s)), onChange: (e) => h.events.push(e) });
    m.setServices([svc]);
    m.start();
    await h.timers.advance(0);
    httpOk = false;
    await h.timers.advance(10_000);
    assert.equal(m.status()[0]!.up, false);
    assert.deepEqual(h.events.map((e) => [e.check, e.server, e.reason]), [['http#1', 'down', 'status 503']]);
    assert.deepEqual(m.status()[0]!.checks.map((c) => c.up), [true, false]);
  });

  it('dynamic weight from an external check (MISC_CHECK misc_dynamic) while up', async () => {
    const h = harness();
    h.monitor.setServices([service({ servers: 1 })]);
    h.checker.answers.set(RS[0]!, { ok: true, weight: 7, reason: 'exit 9' });
    h.monitor.start();
    await h.timers.advance(0);
    assert.deepEqual(weights(h.monitor), [[RS[0], 7]]);
    assert.equal(h.events[0]!.weight, 7);
  });

  it('on and off run nothing: always up, always down', async () => {
    const h = harness();
    h.monitor.setServices([service({ checks: [[check({ spec: { kind: 'on' } })], [check({ spec: { kind: 'off' } })], []] })]);
    h.monitor.start();
    await h.timers.advance(60_000);
    assert.equal(h.checker.tries.length, 0);
    assert.deepEqual(weights(h.monitor), [[RS[0], 2], [RS[1], 0], [RS[2], 2]]);
  });

  it('checktype=on with quiescent=no: nothing can be taken out, so the service keeps IPVS default (no expireNodestConn)', () => {
    const h = harness();
    h.monitor.setServices([service({ quiescent: false, checks: RS.map(() => [check({ spec: { kind: 'on' } })]) })]);
    assert.equal(h.monitor.effectiveServices()[0]!.service.expireNodestConn, undefined);
    h.monitor.setServices([service({ quiescent: false })]);
    assert.equal(h.monitor.effectiveServices()[0]!.service.expireNodestConn, true);
  });

  it('startDown (keepalived alpha): down until the first successful round', async () => {
    const h = harness();
    h.monitor.setServices([service({ startDown: true })]);
    assert.deepEqual(weights(h.monitor), RS.map((a) => [a, 0]));
    h.monitor.start();
    await h.timers.advance(0);
    assert.deepEqual(weights(h.monitor), RS.map((a) => [a, 2]));
  });

  it('ldirectord numeric checktype: N connect rounds, then one negotiate round', async () => {
    const h = harness();
    const negotiate: CheckSpec = { kind: 'http', tls: false, method: 'GET', urls: [{ path: '/' }], timeoutMs: 1000 };
    h.monitor.setServices([service({ servers: 1, checks: [[check({ spec: negotiate, alternate: { connectSpec: { kind: 'connect', protocol: 'tcp', timeoutMs: 500 }, connectsPerRound: 2 } })]] })]);
    h.monitor.start();
    await h.timers.advance(50_000);
    assert.deepEqual(h.checker.tries.map((t) => t.kind), ['connect', 'connect', 'http', 'connect', 'connect', 'http']);
  });

  it('a reload keeps the state of unchanged checkers and starts changed ones fresh', async () => {
    const h = harness();
    h.monitor.setServices([service()]);
    h.checker.answers.set(RS[0]!, { ok: false, reason: 'refused' });
    h.monitor.start();
    await h.timers.advance(0);
    assert.equal(h.monitor.status().filter((s) => !s.up).length, 1);
    const before = h.checker.tries.length;
    // same services: nothing restarts, RS[0] stays down
    h.monitor.setServices([service()]);
    await h.timers.advance(0);
    assert.equal(h.checker.tries.length, before, 'no extra round');
    assert.equal(h.monitor.status().filter((s) => !s.up).length, 1);
    // RS[1]'s check changed (interval): it restarts; RS[2] removed: its checker stops
    const changed = service({ servers: 2, checks: [[check()], [check({ intervalMs: 5000 })]] });
    h.monitor.setServices([changed]);
    await h.timers.advance(0);
    assert.equal(h.checker.tries.length, before + 1);
    await h.timers.advance(100_000);
    assert.equal(h.checker.triesOf(RS[2]!).length, 1, 'the removed real server is checked no more');
    assert.equal(h.monitor.status().length, 2);
  });

  it('stop() clears every timer and aborts tries in flight', async () => {
    const h = harness();
    h.monitor.setServices([service()]);
    h.checker.answers.set(RS[0]!, 'hang');
    h.monitor.start();
    await h.timers.advance(0);
    assert.ok(h.timers.pending > 0);
    h.monitor.stop();
    await settle();
    assert.equal(h.timers.pending, 0);
    assert.equal(h.monitor.running, 0);
    assert.equal(h.checker.hanging[0]!.signal.aborted, true);
    await h.timers.advance(100_000);
    assert.equal(h.checker.tries.length, 3);
  });

  it('a checker that throws or rejects counts as a failed try, never as an exception', async () => {
    const clock = new ManualClock(0);
    const timers = new VirtualTimers(clock);
    let n = 0;
    const m = new HealthMonitor({}, {
      clock,
      timers,
      run: () => {
        if (n++ % 2 === 0) throw new Error('boom');
        return Promise.reject(new Error('bang'));
      },
    });
    m.setServices([service({ servers: 2 })]);
    m.start();
    await timers.advance(0);
    assert.deepEqual(m.status().map((s) => [s.up, s.checks[0]!.lastReason]), [[false, 'checker failed: boom'], [false, 'checker failed: bang']]);
  });

  it('rejects maxParallel < 1', () => {
    assert.throws(() => new HealthMonitor({ maxParallel: 0 }, { clock: new ManualClock(), timers: new VirtualTimers(new ManualClock()), run: () => Promise.resolve({ ok: true, reason: '' }) }), { code: 'SARU_ERR_INVALID_ARGUMENT' });
  });

  it('property: the effective weights follow the last round of every real server', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.array(fc.boolean(), { minLength: 3, maxLength: 3 }), { minLength: 1, maxLength: 8 }), fc.boolean(), async (rounds, quiescent) => {
        const h = harness(2);
        h.monitor.setServices([service({ quiescent })]);
        for (const [n, round] of rounds.entries()) {
          round.forEach((ok, i) => h.checker.answers.set(RS[i]!, ok ? { ok: true, reason: 'ok' } : { ok: false, reason: 'no' }));
          if (n === 0) h.monitor.start();
          await h.timers.advance(n === 0 ? 0 : 10_000);
          const eff = h.monitor.effectiveServices()[0]!.realServers;
          const want = round.map((ok, i) => (ok ? [RS[i], 2] : quiescent ? [RS[i], 0] : null)).filter((x) => x !== null);
          assert.deepEqual(eff.map((r) => [r.address, r.weight]), want);
        }
        h.monitor.stop();
      }),
      { numRuns: 60 },
    );
  });
});
