#!/usr/bin/env node
/**
 * `saru`: the director daemon's command line, as the original saru's:
 *   saru --config FILE [--debug] [--log_facility -|FACILITY]
 * Runs in the foreground (systemd and the SysV script manage it). SIGTERM or
 * SIGINT: stop cleanly, removing the socket filter, the nftables table and
 * the VIP addresses it added. SIGHUP: reload the services file as a diff,
 * without dropping connections. Exit status: 0 after a clean stop, 1 on a
 * configuration or start-up error (printed with file and line), 2 when the
 * data plane dies (fate sharing: the director stops forwarding).
 */
import { Command } from 'commander';
import { SaruError } from '../core/index.js';
import { loadSaruConf } from './config.js';
import { Director } from './director.js';
import { execRunner } from './hoststack.js';
import { createLogger } from './log.js';

async function main(): Promise<void> {
  const program = new Command('saru')
    .description('Saru director: active-active layer-4 load balancing with a shared VIP and MAC')
    .requiredOption('-c, --config <file>', 'saru.conf')
    .option('-d, --debug', 'log at debug level')
    .option('--log_facility <facility>', '"-" logs to the terminal; otherwise a syslog facility for JSON lines on stdout', 'daemon')
    .showHelpAfterError();
  program.parse();
  const opts = program.opts<{ config: string; debug?: boolean; log_facility: string }>();

  let log;
  let config;
  try {
    log = createLogger({ name: 'saru', debug: opts.debug === true, facility: opts.log_facility });
    config = loadSaruConf(opts.config);
  } catch (e) {
    process.stderr.write(`saru: ${(e as Error).message}\n`);
    process.exit(1);
  }
  const director = new Director(config, { log, run: execRunner, now: () => performance.now() });
  let stopping = false;
  const stop = async (code: number): Promise<void> => {
    if (stopping) return;
    stopping = true;
    await director.stop();
    process.exit(code);
  };
  director.onFatal = (e) => {
    log.fatal({ err: e.message }, 'data plane failed; stopping');
    void stop(2);
  };
  process.on('SIGTERM', () => void stop(0));
  process.on('SIGINT', () => void stop(0));
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

void main();
