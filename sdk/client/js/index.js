// @nodb/client — JavaScript client for nodb (browsers and Node 20+).
export { NodbClient, NodbError, createClient, SUBPROTOCOL } from './client.js';
export { applyPatch, parsePointer, escapePointerToken, getPointer, checkValue, PatchError } from './patch.js';
export { memoryStorage, defaultStorage } from './storage.js';
