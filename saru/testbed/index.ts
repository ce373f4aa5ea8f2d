/**
 * The namespace testbed's public surface: the Testbed (build, inspect, tear
 * down; start, stop and kill directors), its address plan, the renderers of
 * the files handed to each director, and the byte pattern the real servers
 * serve. The real-server programs (http-server.js, udp-echo.js) and the
 * one-shot udp-client.js are separate entry points run inside namespaces.
 * Also the guard that tears a testbed down on signals, and the reader of
 * the daemons' JSON logs (takeover lines).
 */
export { Testbed, REQUIRED_TOOLS, allocationProblem, findTool, readTestbedSettings, sliceBuckets } from './testbed.js';
export type { TestbedInit, TestbedStatus, TestbedProcess, DirectorStatus, NamespaceRole, ProbeOutcome } from './testbed.js';
export { ADDRESSES, SHARED_MAC, MAX_DIRECTORS, MAX_REAL_SERVERS, staticSlice } from './addresses.js';
export type { TestbedAddresses, DirectorAddresses, RealServerAddresses } from './addresses.js';
export { renderServices, renderSaruConf } from './config.js';
export type { ServicesSpec, SaruConfSpec, TestbedFwd } from './config.js';
export { PATTERN_PERIOD, PATTERN_BLOCK, patternByte, patternMismatch } from './pattern.js';
export { commandLine, type RunResult } from './proc.js';
export { TestbedGuard, type TestbedGuardOptions } from './guard.js';
export { LogTail, lineTime, memberDownLines, takeoverLines, type LogLine } from './logtail.js';
