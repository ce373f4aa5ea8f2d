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
