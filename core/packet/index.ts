/**
 * Public surface of core/packet: the parsed-frame struct and drop reasons,
 * the checksum primitives, and the frame parser. Other folders import only this.
 */
export * from './frame.js';
export * from './checksum.js';
export * from './parse.js';
export * from './write.js';
