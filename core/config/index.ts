/**
 * Configuration parsing: the public surface of core/config. Owns nothing
 * itself; re-exports the ldirectord.cf parser and the port-name table.
 */
export {
  parseLdirectord,
  loadLdirectordFile,
  toServiceInits,
  checkPortFor,
  LD_SERVICES,
  LD_DEFAULT_CHECKTIMEOUT_S,
  LD_DEFAULT_NEGOTIATETIMEOUT_S,
} from './ldirectord.js';
export type {
  LdirectordConfig,
  LdGlobals,
  LdVirtualService,
  LdRealServer,
  LdServer,
  LdCheck,
  LdCheckType,
  LdForward,
  LdService,
} from './ldirectord.js';
export { SERVICE_PORTS, resolvePort } from './ports.js';
export { parseKeyValueFile, intIn, IFNAME, type KeyValueFile } from './keyvalue.js';
export {
  parseKeepalived,
  loadKeepalivedFile,
  keepalivedServices,
  splitCommandLine,
  KA_DEFAULT_DELAY_LOOP_S,
  KA_DEFAULT_CONNECT_TIMEOUT_S,
  KA_DEFAULT_RETRY,
  KA_DEFAULT_MISC_RETRY,
  KA_DEFAULT_DELAY_BEFORE_RETRY_S,
  KA_DEFAULT_HTTP_DELAY_BEFORE_RETRY_S,
  KA_DEFAULT_PERSISTENCE_TIMEOUT_S,
  KA_SMTP_DEFAULT_HELO,
  MAX_INCLUDE_DEPTH,
} from './keepalived.js';
export type {
  KeepalivedOptions,
  KeepalivedConfig,
  KaIgnored,
  KaEndpoint,
  KaGroupEntry,
  KaVirtualServerGroup,
  KaServer,
  KaRealServer,
  KaVirtualServer,
} from './keepalived.js';
export {
  detectServicesFormat,
  parseServices,
  loadServicesFile,
  ldirectordServices,
  type ServicesFile,
  type ServicesFormat,
  type ServicesLoadOptions,
} from './services.js';
