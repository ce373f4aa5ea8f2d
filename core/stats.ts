/**
 * Traffic counters for one virtual service or real server, as IPVS's
 * struct ip_vs_stats (include/net/ip_vs.h): connections, packets and bytes
 * in and out, and the rates the estimator (core/estimator.ts) derives from them.
 * Owns the numbers only; the engine increments them, the estimator reads them.
 */
export class Stats {
  /** Connections scheduled (ipvsadm "Conns"). */
  conns = 0;
  /** Packets client -> real server (ipvsadm "InPkts"). */
  inPkts = 0;
  /** Packets real server -> client, seen only in NAT (ipvsadm "OutPkts"). */
  outPkts = 0;
  /** Bytes client -> real server, IP header included (ipvsadm "InBytes"). */
  inBytes = 0;
  /** Bytes real server -> client (ipvsadm "OutBytes"). */
  outBytes = 0;

  /** Connections per second (ipvsadm "CPS"), set by the rate estimator. */
  cps = 0;
  /** Incoming packets per second ("InPPS"). */
  inpps = 0;
  /** Outgoing packets per second ("OutPPS"). */
  outpps = 0;
  /** Incoming bytes per second ("InBPS"). */
  inbps = 0;
  /** Outgoing bytes per second ("OutBPS"). */
  outbps = 0;

  /** Add another Stats' counters (not rates) to this one. */
  add(o: Stats): void {
    this.conns += o.conns;
    this.inPkts += o.inPkts;
    this.outPkts += o.outPkts;
    this.inBytes += o.inBytes;
    this.outBytes += o.outBytes;
  }
}
