#!/usr/bin/env node
/**
 * `saru`: the director daemon's command line, as the original saru's:
 *   saru --config FILE [--debug] [--log_facility -|FACILITY] [--join_delay SECONDS]
 *   saru --check (--services FILE | --config FILE) [--services_format F] [--instance NAME]
 * `--check` validates the services file without touching the network (like
 * `keepalived -t`): prints it in `ipvsadm -L -n` format and exits 0, or
 * prints FILE:LINE: reason and exits 1.
 * Runs in the foreground (systemd and the SysV script manage it). SIGTERM or
 * SIGINT: leave the cluster gracefully (hand the buckets over, finish this
 * director's own connections in them, at most drain_timeout), then stop
 * cleanly, removing the socket filter, the nftables table and the VIP
 * addresses it added; a second SIGTERM or SIGINT skips the waiting.
 * SIGHUP: reload the services file as a diff,
 * without dropping connections. Exit status: 0 after a clean stop, 1 on a
 * configuration or start-up error (printed with file and line), 2 when the
 * data plane dies (fate sharing: the director stops forwarding).
 */
import { Command } from 'commander';
import { SaruError } from '../core/index.js';
import { checkServicesFile } from './check.js';
import { loadSaruConf } from './config.js';
import { Director } from './director.js';
import { execRunner } from './hoststack.js';
import { createLogger } from './log.js';

async function main(): Promise<void> {
  const program = new Command('saru')
    .description('Saru director: active-active layer-4 load balancing with a shared VIP and MAC')
    .option('-c, --config <file>', 'saru.conf')
    .option('-t, --check', 'validate the services file (--services, or the one saru.conf names), print it as ipvsadm -L -n, and exit')
    .option('--services <file>', 'with --check: the services file (ldirectord.cf or keepalived.conf)')
    .option('--services_format <format>', 'with --check: auto, ldirectord or keepalived (default: saru.conf services_format, else auto)')
    .option('--instance <name>', "with --check: keepalived's -i, for @NAME lines (default: saru.conf keepalived_instance)")
    .option('-d, --debug', 'log at debug level')
    .option('--log_facility <facility>', '"-" logs to the terminal; otherwise a syslog facility for JSON lines on stdout', 'daemon')
    .option('--join_delay <seconds>', "longest wait for saru-syncd's resync before taking buckets (overrides saru.conf join_delay)")
    .showHelpAfterError();
  program.parse();
  const opts = program.opts<{
    config?: string;
    check?: boolean;
    services?: string;
    services_format?: string;
    instance?: string;
    debug?: boolean;
    log_facility: string;
    join_delay?: string;
  }>();
  if (opts.check) {
    process.exit(runCheck(opts));
  }
  if (opts.config === undefined) program.error("error: required option '-c, --config <file>' not specified");

  let log;
  let config;
  try {
    log = createLogger({ name: 'saru', debug: opts.debug === true, facility: opts.log_facility });
    config = loadSaruConf(opts.config!);
    if (opts.join_delay !== undefined) {
      if (!/^\d+$/.test(opts.join_delay) || Number(opts.join_delay) > 3600) throw new Error(`--join_delay: expected seconds 0-3600, got "${opts.join_delay}"`);
      if (config.coordinator === null) throw new Error('--join_delay: no coordinator (static_slice in saru.conf)');
      config.coordinator.joinDelayMs = Number(opts.join_delay) * 1000;
    }
  } catch (e) {
    process.stderr.write(`saru: ${(e as Error).message}\n`);
    process.exit(1);
  }
  const director = new Director(config, { log, run: execRunner, now: () => performance.now() });
  let stopping = false;
  const stop = async (code: number, graceful: boolean): Promise<void> => {
    if (stopping) {
      director.hurryStop();
      return;
    }
    stopping = true;
    await director.stop({ graceful });
    process.exit(code);
  };
  director.onFatal = (e) => {
    log.fatal({ err: e.message }, 'data plane failed; stopping');
    void stop(2, false);
  };
  process.on('SIGTERM', () => void stop(0, true));
  process.on('SIGINT', () => void stop(0, true));
  process.on('SIGHUP', () => {
    director.reload().catch((e: Error) => log.error({ err: e.message }, 'reload failed; keeping the running services'));
  });
  try {
    await director.start();
  } catch (e) {
    const msg = e instanceof SaruError ? `${e.code}: ${e.message}` : String((e as Error).stack ?? e);
    log.fatal({ err: msg }, 'start failed');
    process.stderr.write(`saru: ${msg}\n`);
    process.exit(1);
  }
}

/** `saru --check`: 0 when the services file is valid, 1 with FILE:LINE: reason otherwise. */
function runCheck(opts: { config?: string; services?: string; services_format?: string; instance?: string }): number {
  try {
    let file = opts.services;
    let format = opts.services_format;
    let instance = opts.instance;
    if (file === undefined) {
      if (opts.config === undefined) throw new Error('--check needs --services FILE or --config FILE');
      const conf = loadSaruConf(opts.config);
      file = conf.services;
      format ??= conf.servicesFormat;
      instance ??= conf.keepalivedInstance ?? undefined;
    }
    if (format !== undefined && format !== 'auto' && format !== 'ldirectord' && format !== 'keepalived') {
      throw new Error(`--services_format: expected auto, ldirectord or keepalived, got "${format}"`);
    }
    const report = checkServicesFile(file, { ...(format ? { format } : {}), ...(instance !== undefined ? { instance } : {}) });
    process.stdout.write(report.listing);
    for (const n of report.notes) process.stderr.write(`${n}\n`);
    return 0;
  } catch (e) {
    process.stderr.write(`saru: ${(e as Error).message}\n`);
    return 1;
  }
}

void main();
