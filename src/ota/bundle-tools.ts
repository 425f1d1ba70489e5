// What the operator's tools (`reflex bundle`, `reflex keys`) use of the bundle format, in one
// namespace, so the CLI and the robot read and write the very same bytes.
export { isVersion, isSafeName, defaultKeyId, keyFingerprint, ed25519PublicKey, sha256Hex, encodeManifest, parseManifest, RESERVED, MANIFEST_FILE, SIGNATURE_FILE, SIGNER_FILE } from './manifest.js';
export { extractArchive, writeArchive, tempDirIn, type ArchivePart } from './archive.js';
export { checkFiles, ioOf, unpackChecked, verifyDirChecked } from './verify.js';
export { resolveTrustedKeys } from './config.js';
