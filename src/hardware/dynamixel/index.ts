export { crc16 } from './crc.js';
export * from './protocol.js';
export { encodePacket, packet, build, le, maxPacketBytes } from './encode.js';
export { PacketParser, type ParsedPacket, type ParserStats } from './parser.js';
export * from './tables.js';
export * from './units.js';
