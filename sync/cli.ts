#!/usr/bin/env node
/**
 * `saru-syncd`: the connection-sync daemon's command line, as
 * ip_vs_user_sync_simple's:
 *   saru-syncd --config FILE [--debug] [--log_facility -|FACILITY]
 * Runs in the foreground (systemd and the SysV script manage it). SIGTERM or
 * SIGINT: stop (forwarding in saru is not touched). SIGHUP: re-read the
 * configuration; the sync threshold applies at once, other changes are
 * reported as needing a restart. Exit status: 0 after a clean stop, 1 on a
 * configuration or start-up error (printed with file and line; also a
 * node_id that differs from the local saru's), 2 when the sync transport
 * cannot be opened.
 */
import { Command } from 'commander';
import { SaruError } from '../core/index.js';
import { createLogger } from '../saru/index.js';
import { loadSyncConf } from './config.js';
import { SyncDaemon } from './daemon.js';

async function main(): Promise<void> {
  const program = new Command('saru-syncd')
    .description('Saru connection sync daemon: peer-to-peer, reliable, authenticated sync of connection entries')
    .requiredOption('-c, --config <file>', 'saru-syncd.conf')
    .option('-d, --debug', 'log at debug level')
    .option('--log_facility <facility>', '"-" logs to the terminal; otherwise a syslog facility for JSON lines on stdout', 'daemon')
    .showHelpAfterError();
  program.parse();
  const opts = program.opts<{ config: string; debug?: boolean; log_facility: string }>();
  let log;
  let config;
  try {
    log = createLogger({ name: 'saru-syncd', debug: opts.debug === true, facility: opts.log_facility });
    config = loadSyncConf(opts.config);
  } catch (e) {
    process.stderr.write(`saru-syncd: ${(e as Error).message}\n`);
    process.exit(1);
  }
  const daemon = new SyncDaemon(config, { log });
  let stopping = false;
  const stop = async (code: number): Promise<void> => {
    if (stopping) return;
    stopping = true;
    await daemon.stop();
    process.exit(code);
  };
  daemon.onFatal = (e) => {
    process.stderr.write(`saru-syncd: ${e.message}\n`);
    void stop(e instanceof SaruError && e.code === 'SARU_ERR_CONFIG' ? 1 : 2);
  };
  process.on('SIGTERM', () => void stop(0));
  process.on('SIGINT', () => void stop(0));
  process.on('SIGHUP', () => {
    try {
      void daemon.reload(loadSyncConf(opts.config)).catch((e: Error) => log.error({ err: e.message }, 'reload failed; keeping the running settings'));
    } catch (e) {
      log.error({ err: (e as Error).message }, 'reload failed; keeping the running settings');
    }
  });
  try {
    await daemon.start();
  } catch (e) {
    const msg = e instanceof SaruError ? `${e.code}: ${e.message}` : String((e as Error).stack ?? e);
    log.fatal({ err: msg }, 'start failed');
    process.stderr.write(`saru-syncd: ${msg}\n`);
    process.exit(1);
  }
}

void main();
