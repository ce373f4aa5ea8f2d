/**
 * The IPVS TCP state machine through the table: table-driven sequences for
 * NAT (INPUT/OUTPUT tables) and DR/TUN (INPUT_ONLY), checking state, timeout
 * and expiry exactly at the timeout boundary with a ManualClock; the
 * active/inactive counters of the real server; UDP; names and overrides.
 */
import { strict as assert } from 'node:assert';
import { Fwd, Proto } from '../../../core/constants.js';
import {
  DEFAULT_TCP_TIMEOUTS_S,
  TCP_STATE_NAMES,
  TcpDir,
  TcpState,
  Timeouts,
  stateName,
  tcpNextState,
  tcpStateActive,
} from '../../../core/conn/index.js';
import { flow, setup, tcp } from './helpers.js';

interface Step {
  /** 'in' client -> server, 'out' server -> client (NAT reply). */
  dir: 'in' | 'out';
  flags: string;
  state: keyof typeof TcpState;
  /** Expected timeout after this packet, seconds. */
  timeoutS: number;
}
interface Case {
  description: string;
  fwd: Fwd;
  steps: Step[];
}

const CASES: Case[] = [
  {
    description: 'NAT: handshake, client closes first',
    fwd: Fwd.NAT,
    steps: [
      { dir: 'in', flags: 'S', state: 'SYN_RECV', timeoutS: 60 },
      { dir: 'out', flags: 'SA', state: 'SYN_RECV', timeoutS: 60 },
      { dir: 'in', flags: 'A', state: 'ESTABLISHED', timeoutS: 900 },
      { dir: 'in', flags: 'A', state: 'ESTABLISHED', timeoutS: 900 },
      { dir: 'out', flags: 'A', state: 'ESTABLISHED', timeoutS: 900 },
      { dir: 'in', flags: 'FA', state: 'CLOSE_WAIT', timeoutS: 60 },
      { dir: 'out', flags: 'A', state: 'CLOSE_WAIT', timeoutS: 60 },
      { dir: 'out', flags: 'FA', state: 'TIME_WAIT', timeoutS: 120 },
      { dir: 'in', flags: 'A', state: 'TIME_WAIT', timeoutS: 120 },
    ],
  },
  {
    description: 'NAT: server closes first',
    fwd: Fwd.NAT,
    steps: [
      { dir: 'in', flags: 'S', state: 'SYN_RECV', timeoutS: 60 },
      { dir: 'out', flags: 'SA', state: 'SYN_RECV', timeoutS: 60 },
      { dir: 'in', flags: 'A', state: 'ESTABLISHED', timeoutS: 900 },
      { dir: 'out', flags: 'FA', state: 'FIN_WAIT', timeoutS: 120 },
      { dir: 'in', flags: 'A', state: 'FIN_WAIT', timeoutS: 120 },
      { dir: 'in', flags: 'FA', state: 'TIME_WAIT', timeoutS: 120 },
      { dir: 'out', flags: 'A', state: 'TIME_WAIT', timeoutS: 120 },
    ],
  },
  {
    description: 'NAT: client reset',
    fwd: Fwd.NAT,
    steps: [
      { dir: 'in', flags: 'S', state: 'SYN_RECV', timeoutS: 60 },
      { dir: 'out', flags: 'SA', state: 'SYN_RECV', timeoutS: 60 },
      { dir: 'in', flags: 'A', state: 'ESTABLISHED', timeoutS: 900 },
      { dir: 'in', flags: 'RA', state: 'CLOSE', timeoutS: 10 },
    ],
  },
  {
    description: 'NAT: server refuses (RST to SYN)',
    fwd: Fwd.NAT,
    steps: [
      { dir: 'in', flags: 'S', state: 'SYN_RECV', timeoutS: 60 },
      { dir: 'out', flags: 'RA', state: 'CLOSE', timeoutS: 10 },
      { dir: 'in', flags: 'S', state: 'SYN_RECV', timeoutS: 60 },
    ],
  },
  {
    description: 'NAT: mid-stream ACK creates ESTABLISHED (INPUT ack on NONE), CLOSE on a flagless segment',
    fwd: Fwd.NAT,
    steps: [
      { dir: 'in', flags: 'A', state: 'ESTABLISHED', timeoutS: 900 },
      { dir: 'in', flags: '', state: 'CLOSE', timeoutS: 10 },
    ],
  },
  {
    description: 'NAT: server-side SYN (OUTPUT syn on NONE) is SYN_SENT; ack in SYN_SENT stays',
    fwd: Fwd.NAT,
    steps: [
      { dir: 'out', flags: 'S', state: 'SYN_SENT', timeoutS: 120 },
      { dir: 'out', flags: 'A', state: 'SYN_SENT', timeoutS: 120 },
      { dir: 'in', flags: 'S', state: 'ESTABLISHED', timeoutS: 900 },
    ],
  },
  {
    description: 'DR: input-only handshake and close',
    fwd: Fwd.DR,
    steps: [
      { dir: 'in', flags: 'S', state: 'SYN_RECV', timeoutS: 60 },
      { dir: 'in', flags: 'S', state: 'SYN_RECV', timeoutS: 60 },
      { dir: 'in', flags: 'A', state: 'ESTABLISHED', timeoutS: 900 },
      { dir: 'in', flags: 'PA', state: 'ESTABLISHED', timeoutS: 900 },
      { dir: 'in', flags: 'FA', state: 'FIN_WAIT', timeoutS: 120 },
      { dir: 'in', flags: 'A', state: 'FIN_WAIT', timeoutS: 120 },
    ],
  },
  {
    description: 'DR: reset in ESTABLISHED, new SYN reuses the entry',
    fwd: Fwd.DR,
    steps: [
      { dir: 'in', flags: 'S', state: 'SYN_RECV', timeoutS: 60 },
      { dir: 'in', flags: 'A', state: 'ESTABLISHED', timeoutS: 900 },
      { dir: 'in', flags: 'R', state: 'CLOSE', timeoutS: 10 },
      { dir: 'in', flags: 'S', state: 'SYN_RECV', timeoutS: 60 },
    ],
  },
  {
    description: 'DR: RST in SYN_RECV stays SYN_RECV (input-only rst column)',
    fwd: Fwd.DR,
    steps: [
      { dir: 'in', flags: 'S', state: 'SYN_RECV', timeoutS: 60 },
      { dir: 'in', flags: 'R', state: 'SYN_RECV', timeoutS: 60 },
    ],
  },
  {
    description: 'TUN: same input-only table; FIN then SYN',
    fwd: Fwd.TUN,
    steps: [
      { dir: 'in', flags: 'S', state: 'SYN_RECV', timeoutS: 60 },
      { dir: 'in', flags: 'A', state: 'ESTABLISHED', timeoutS: 900 },
      { dir: 'in', flags: 'FA', state: 'FIN_WAIT', timeoutS: 120 },
      { dir: 'in', flags: 'S', state: 'SYN_RECV', timeoutS: 60 },
    ],
  },
  {
    description: 'DR: a reply seen by the director clears NOOUTPUT; full tables from then on',
    fwd: Fwd.DR,
    steps: [
      { dir: 'in', flags: 'S', state: 'SYN_RECV', timeoutS: 60 },
      { dir: 'in', flags: 'A', state: 'ESTABLISHED', timeoutS: 900 },
      // INPUT fin on ESTABLISHED is CLOSE_WAIT (INPUT_ONLY would give FIN_WAIT).
      { dir: 'out', flags: 'A', state: 'ESTABLISHED', timeoutS: 900 },
      { dir: 'in', flags: 'FA', state: 'CLOSE_WAIT', timeoutS: 60 },
    ],
  },
];

describe('conn/states: TCP transitions through the table', () => {
  for (const c of CASES) {
    it(c.description, () => {
      const { clock, table, rs } = setup({ fwd: c.fwd });
      const f = flow(Proto.TCP, '198.51.100.7', 40000, '192.0.2.10', 80);
      const idx = table.create(f, rs[0]!);
      assert.ok(idx >= 0);
      assert.equal(table.stateName(idx), 'NONE');
      assert.equal(table.remainingMs(idx), 3000, 'fresh entry gets the kernel 3 s');
      for (const [n, s] of c.steps.entries()) {
        clock.advance(500);
        table.packet(idx, s.dir === 'out', tcp(s.flags));
        assert.equal(table.stateName(idx), s.state, `step ${n} (${s.dir} ${s.flags})`);
        assert.equal(table.remainingMs(idx), s.timeoutS * 1000, `timeout after step ${n}`);
      }
      // Expiry exactly at the boundary.
      const last = c.steps[c.steps.length - 1]!.timeoutS * 1000;
      clock.advance(last - 1);
      assert.equal(table.expire(), 0);
      assert.equal(table.lookupIn(f), idx, 'alive 1 ms before the timeout');
      clock.advance(1);
      assert.equal(table.expire(), 1);
      assert.equal(table.lookupIn(f), -1, 'gone at the timeout');
      assert.equal(table.size, 0);
      assert.equal(rs[0]!.activeConns + rs[0]!.inactConns, 0);
    });
  }

  it('tcpNextState matches the kernel table on sampled cells', () => {
    // INPUT syn: every state but ES/SS goes to SYN_RECV.
    assert.equal(tcpNextState(TcpDir.INPUT, tcp('S'), TcpState.TIME_WAIT), TcpState.SYN_RECV);
    assert.equal(tcpNextState(TcpDir.INPUT, tcp('S'), TcpState.SYN_SENT), TcpState.ESTABLISHED);
    // INPUT ack on LAST_ACK closes; OUTPUT ack on LAST_ACK stays.
    assert.equal(tcpNextState(TcpDir.INPUT, tcp('A'), TcpState.LAST_ACK), TcpState.CLOSE);
    assert.equal(tcpNextState(TcpDir.OUTPUT, tcp('A'), TcpState.LAST_ACK), TcpState.LAST_ACK);
    // OUTPUT rst in TIME_WAIT stays TIME_WAIT; INPUT rst on SYNACK is SYN_RECV.
    assert.equal(tcpNextState(TcpDir.OUTPUT, tcp('R'), TcpState.TIME_WAIT), TcpState.TIME_WAIT);
    assert.equal(tcpNextState(TcpDir.INPUT, tcp('R'), TcpState.SYNACK), TcpState.SYN_RECV);
    // OUTPUT ack on LISTEN establishes; RST wins over SYN; SYN over FIN.
    assert.equal(tcpNextState(TcpDir.OUTPUT, tcp('A'), TcpState.LISTEN), TcpState.ESTABLISHED);
    assert.equal(tcpNextState(TcpDir.INPUT, tcp('SR'), TcpState.ESTABLISHED), TcpState.CLOSE);
    assert.equal(tcpNextState(TcpDir.INPUT_ONLY, tcp('SF'), TcpState.NONE), TcpState.SYN_RECV);
  });

  it('active states are ESTABLISHED, SYN_SENT, SYN_RECV and SYNACK (tcp_state_active_table)', () => {
    const active = TCP_STATE_NAMES.filter((_, s) => tcpStateActive(s));
    assert.deepEqual(active, ['ESTABLISHED', 'SYN_SENT', 'SYN_RECV', 'SYNACK']);
  });

  it('default timeouts and ipvsadm --set overrides', () => {
    assert.deepEqual(DEFAULT_TCP_TIMEOUTS_S, [2, 900, 120, 60, 120, 120, 10, 60, 30, 120, 120]);
    const t = new Timeouts({ tcp: 7200, tcpfin: 30, udp: 10, tcpStates: { TIME_WAIT: 5 } });
    assert.equal(t.tcpMs[TcpState.ESTABLISHED], 7_200_000);
    assert.equal(t.tcpMs[TcpState.FIN_WAIT], 30_000);
    assert.equal(t.tcpMs[TcpState.TIME_WAIT], 5_000);
    assert.equal(t.udpMs, 10_000);
    assert.equal(new Timeouts().icmpMs, 60_000);
    assert.throws(() => new Timeouts({ tcpStates: { BOGUS: 1 } }), { code: 'SARU_ERR_INVALID_ARGUMENT' });
    assert.throws(() => new Timeouts({ tcp: -1 }), { code: 'SARU_ERR_INVALID_ARGUMENT' });
  });

  it('state names as ipvsadm -L -c prints them', () => {
    assert.equal(stateName(Proto.TCP, TcpState.CLOSE_WAIT, false), 'CLOSE_WAIT');
    assert.equal(stateName(Proto.UDP, 0, false), 'UDP');
    assert.equal(stateName(Proto.ICMP, 0, false), 'ICMP');
    assert.equal(stateName(Proto.TCP, 0, true), 'NONE');
    assert.equal(stateName(Proto.TCP, 11, false), 'ERR!');
  });

  it('overridden timeouts are used by the table', () => {
    const { clock, table, rs } = setup({ fwd: Fwd.DR, table: { timeouts: { tcp: 30 } } });
    const f = flow(Proto.TCP, '198.51.100.7', 40000, '192.0.2.10', 80);
    const idx = table.create(f, rs[0]!);
    table.packet(idx, false, tcp('S'));
    table.packet(idx, false, tcp('A'));
    assert.equal(table.remainingMs(idx), 30_000);
    clock.advance(30_000);
    assert.equal(table.expire(), 1);
  });
});

describe('conn/states: real server active/inactive counters', () => {
  it('NAT TCP: inactive at creation, active from SYN_RECV to ESTABLISHED, inactive when closing, released at expiry', () => {
    const { clock, table, rs } = setup({ fwd: Fwd.NAT });
    const r = rs[0]!;
    const f = flow(Proto.TCP, '198.51.100.7', 40000, '192.0.2.10', 80);
    const idx = table.create(f, r);
    assert.deepEqual([r.activeConns, r.inactConns], [0, 1], 'ip_vs_bind_dest with IP_VS_CONN_F_INACTIVE');
    table.packet(idx, false, tcp('S'));
    assert.deepEqual([r.activeConns, r.inactConns], [1, 0], 'SYN_RECV is active');
    table.packet(idx, true, tcp('SA'));
    table.packet(idx, false, tcp('A'));
    assert.deepEqual([r.activeConns, r.inactConns], [1, 0]);
    table.packet(idx, false, tcp('FA'));
    assert.equal(table.stateName(idx), 'CLOSE_WAIT');
    assert.deepEqual([r.activeConns, r.inactConns], [0, 1]);
    table.packet(idx, true, tcp('FA'));
    assert.deepEqual([r.activeConns, r.inactConns], [0, 1]);
    clock.advance(120_000);
    table.expire();
    assert.deepEqual([r.activeConns, r.inactConns], [0, 0]);
  });

  it('DR TCP: a reset moves to inactive; a new SYN back to active', () => {
    const { table, rs } = setup({ fwd: Fwd.DR });
    const r = rs[0]!;
    const idx = table.create(flow(Proto.TCP, '198.51.100.7', 40000, '192.0.2.10', 80), r);
    table.packet(idx, false, tcp('S'));
    table.packet(idx, false, tcp('A'));
    assert.deepEqual([r.activeConns, r.inactConns], [1, 0]);
    table.packet(idx, false, tcp('R'));
    assert.deepEqual([r.activeConns, r.inactConns], [0, 1]);
    table.packet(idx, false, tcp('S'));
    assert.deepEqual([r.activeConns, r.inactConns], [1, 0]);
    assert.equal(table.remove(idx), true);
    assert.deepEqual([r.activeConns, r.inactConns], [0, 0]);
  });

  it('UDP entries count as inactive for their whole life (no state transitions move them)', () => {
    const { clock, table, rs } = setup({ protocol: Proto.UDP, fwd: Fwd.DR });
    const r = rs[0]!;
    const f = flow(Proto.UDP, '198.51.100.7', 5353, '192.0.2.10', 80);
    const idx = table.create(f, r);
    for (let i = 0; i < 5; i++) table.packet(idx, false, 0);
    assert.deepEqual([r.activeConns, r.inactConns], [0, 1]);
    assert.equal(table.stateName(idx), 'UDP');
    assert.equal(table.remainingMs(idx), 300_000);
    clock.advance(300_000);
    assert.equal(table.expire(), 1);
    assert.deepEqual([r.activeConns, r.inactConns], [0, 0]);
  });
});
