/**
 * Real-server health checks: the public surface of core/health. The shapes
 * (types.ts) shared by the config parsers and the network checkers, and the
 * pure monitor that schedules checks and turns results into services.
 */
export * from './types.js';
export {
  HealthMonitor,
  configuredInits,
  describeServiceInit,
  type HealthMonitorInit,
  type HealthMonitorDeps,
  type HealthEvent,
  type HealthCounters,
  type RealServerHealth,
} from './monitor.js';
