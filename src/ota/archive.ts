// A bundle archive read as a stream, one tar header at a time, into a fresh directory: every
// header is judged (name, type, size, repeats) before a byte of it is written, so a hostile
// archive is refused without writing anything outside that directory, and a size bomb is
// refused from its header or from the bytes actually seen, whichever comes first.
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, constants, createReadStream, createWriteStream, fstatSync, openSync, readSync } from 'node:fs';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { once } from 'node:events';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';
import { BundleRefused, type ArchiveLimits } from './bundle-types.js';
import { isSafeName, MANIFEST_FILE, MANIFEST_MAX_BYTES, SIGNATURE_FILE, SIGNER_FILE, SIGNER_MAX_BYTES, type ManifestJson } from './manifest.js';

/** Defaults: an ACT or SmolVLA export and its policy.json fit well inside. */
export const DEFAULT_MAX_BYTES = 4 * 1024 ** 3 + 64 * 1024 ** 2;
export const DEFAULT_MAX_FILES = 256;

const BLOCK = 512;
const padded = (n: number) => Math.ceil(n / BLOCK) * BLOCK;

export interface FileSeen {
  sha256: string;
  size: number;
}

export interface Extracted {
  manifest: Buffer | null;
  sig: Buffer | null;
  signer: Buffer | null;
  /** Bundle files written, by name. */
  files: Map<string, FileSeen>;
  /** Folder entries seen (names without the trailing '/'). */
  dirs: Set<string>;
}

/**
 * Called once manifest.json and manifest.sig have both been read (before any later file is
 * written), or at the end: returns the accepted manifest or throws BundleRefused. From then
 * on, a file the manifest does not list, or of another size, is refused while streaming.
 */
export type Accept = (manifest: Buffer, sig: Buffer | null, signer: Buffer | null) => ManifestJson;

function unsafe(message: string): never {
  throw new BundleRefused('unsafe-archive', message);
}

/** The name as a bundle path: './' prefixes and a folder's trailing '/' dropped; judged after. */
function entryName(raw: string, type: string): string {
  if (raw.startsWith('/')) unsafe(`${JSON.stringify(raw)} is an absolute path`);
  let name = raw;
  while (name.startsWith('./')) name = name.slice(2);
  if (type === 'directory') name = name.replace(/\/+$/, '');
  if (name.split('/').includes('..')) unsafe(`${JSON.stringify(raw)} climbs out of the bundle ('..')`);
  if (name === '' || name === '.') return '';
  if (!isSafeName(name)) unsafe(`${JSON.stringify(raw)} is not a safe file name (letters, digits, '.', '_', '-', at most 8 folders deep)`);
  return name;
}

function kindOf(type: string, linkname: string | null | undefined): string {
  if (type === 'symlink') return `a symbolic link to ${JSON.stringify(linkname ?? '')}`;
  if (type === 'link') return `a hard link to ${JSON.stringify(linkname ?? '')}`;
  if (type === 'character-device' || type === 'block-device') return `a ${type.replace('-', ' ')}`;
  if (type === 'fifo') return 'a FIFO';
  return `an entry of type ${type}`;
}

/** Counts what flows into the tar parser and stops it past `max` (a gzip bomb, a padded tar). */
class Cap extends Transform {
  seen = 0;
  constructor(private readonly max: number) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.max) cb(new BundleRefused('too-large', `the archive unpacks to more than ${this.max} bytes of tar`));
    else cb(null, chunk);
  }
}

async function readSmall(entry: AsyncIterable<Buffer>, what: string, max: number, size: number): Promise<Buffer> {
  if (size > max) throw new BundleRefused('too-large', `${what} declares ${size} bytes, at most ${max} are allowed`);
  const parts: Buffer[] = [];
  for await (const c of entry) parts.push(c);
  return Buffer.concat(parts);
}

/** Writes one entry's bytes to a new file (never an existing one, never through a link), hashing them, fsynced. */
async function writeEntry(entry: AsyncIterable<Buffer>, path: string): Promise<FileSeen> {
  const fh = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644);
  const hash = createHash('sha256');
  let size = 0;
  try {
    for await (const chunk of entry) {
      hash.update(chunk);
      size += chunk.length;
      let off = 0;
      while (off < chunk.length) off += (await fh.write(chunk, off, chunk.length - off)).bytesWritten;
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
  return { sha256: hash.digest('hex'), size };
}

/**
 * Streams `archive` (a tar, or a gzipped tar) into the existing empty folder `dir`. Refuses
 * (BundleRefused) an archive that is not a bundle's shape; rethrows I/O errors (a full disk)
 * as they are. The caller owns `dir` and removes it when this throws.
 */
export async function extractArchive(archive: string, dir: string, limits: ArchiveLimits = {}, accept?: Accept): Promise<Extracted> {
  const maxBytes = limits.maxBytes ?? DEFAULT_MAX_BYTES;
  const maxFiles = limits.maxFiles ?? DEFAULT_MAX_FILES;
  // The tar around maxBytes of files: a header and padding per entry, the manifest, the end.
  const maxTar = maxBytes + (maxFiles + 8) * 2 * BLOCK + MANIFEST_MAX_BYTES + SIGNER_MAX_BYTES + 64 * 1024;

  const fd = openSync(archive, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  let gzip: boolean;
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new BundleRefused('unsafe-archive', `${archive} is not a regular file`);
    const magic = Buffer.alloc(2);
    gzip = readSync(fd, magic, 0, 2, 0) === 2 && magic[0] === 0x1f && magic[1] === 0x8b;
    // Compressed, a tar is never much larger than itself.
    if (st.size > maxTar) throw new BundleRefused('too-large', `the archive is ${st.size} bytes, more than the ${maxTar} its limits allow`);
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  const source = createReadStream('', { fd, start: 0, autoClose: true });
  const cap = new Cap(maxTar);
  const extract = tar.extract();
  const gunzip = gzip ? createGunzip() : null;
  const fail = (err: Error) => extract.destroy(err);
  source.on('error', fail);
  cap.on('error', fail);
  gunzip?.on('error', (err) => fail(new BundleRefused('unsafe-archive', `the archive is not valid gzip: ${err.message}`)));
  (gunzip ? source.pipe(gunzip).pipe(cap) : source.pipe(cap)).pipe(extract);

  const out: Extracted = { manifest: null, sig: null, signer: null, files: new Map(), dirs: new Set() };
  const names = new Set<string>();
  let accepted: ManifestJson | null = null;
  let total = 0;
  let end = 0;
  try {
    for await (const source of extract) {
      const h = source.header;
      const entry = source as AsyncIterable<Buffer>;
      const name = entryName(h.name, h.type);
      if (names.size >= maxFiles + 3) throw new BundleRefused('too-large', `the archive has more than ${maxFiles} files`);
      if (names.has(name)) unsafe(`${JSON.stringify(h.name)} appears twice`);
      names.add(name);
      const size = h.size;
      // A base-256 size field that is neither positive nor negative decodes to null, which
      // tar-stream lets through and then waits on for ever.
      if (!Number.isSafeInteger(size) || size < 0) unsafe(`${JSON.stringify(h.name)} has no readable size`);
      end = source.offset + BLOCK + padded(size);
      if (h.type === 'directory') {
        // tar-stream never feeds a folder's data to its entry: reading it would wait for ever.
        if (size !== 0) unsafe(`${JSON.stringify(h.name)} is a folder that declares ${size} bytes of data`);
        if (name !== '') out.dirs.add(name);
        for await (const _ of entry) void _;
        continue;
      }
      if (h.type !== 'file' && h.type !== 'contiguous-file') unsafe(`${JSON.stringify(h.name)} is ${kindOf(h.type, h.linkname)}; a bundle holds only regular files`);
      if (name === '') unsafe(`${JSON.stringify(h.name)} is a file without a name`);
      if (size > maxBytes) throw new BundleRefused('too-large', `${name} declares ${size} bytes, more than the ${maxBytes} allowed`);
      total += size;
      if (total > maxBytes) throw new BundleRefused('too-large', `the files add up to more than the ${maxBytes} bytes allowed`);
      if (name === MANIFEST_FILE) out.manifest = await readSmall(entry, name, MANIFEST_MAX_BYTES, size);
      else if (name === SIGNATURE_FILE) out.sig = await readSmall(entry, name, 1024, size);
      else if (name === SIGNER_FILE) out.signer = await readSmall(entry, name, SIGNER_MAX_BYTES, size);
      else {
        if (accepted === null && accept && out.manifest && out.sig) accepted = accept(out.manifest, out.sig, out.signer);
        if (accepted) {
          const want = Object.hasOwn(accepted.files, name) ? accepted.files[name] : undefined;
          if (!want) throw new BundleRefused('extra-file', `${name} is not in the signed manifest`);
          if (want.size !== size) throw new BundleRefused('tampered', `${name} is ${size} bytes, the signed manifest says ${want.size}`);
        }
        const path = join(dir, name);
        try {
          await mkdir(dirname(path), { recursive: true, mode: 0o755 });
          out.files.set(name, await writeEntry(entry, path));
        } catch (err) {
          // A file where a folder of another entry is, or the other way round.
          const code = (err as NodeJS.ErrnoException).code;
          if (code === 'EEXIST' || code === 'ENOTDIR' || code === 'EISDIR') unsafe(`${JSON.stringify(h.name)} is both a file and a folder of another entry`);
          throw err;
        }
      }
    }
  } catch (err) {
    extract.destroy();
    source.destroy();
    if (err instanceof BundleRefused || (err as NodeJS.ErrnoException).code !== undefined) throw err;
    const msg = (err as Error).message;
    unsafe(msg === 'Unexpected end of data' ? 'the archive ends early, in the middle of an entry' : `not a tar archive: ${msg}`);
  }
  // A tar ends with two zero blocks; one cut at an entry's edge would otherwise pass for whole.
  if (cap.seen - end < 2 * BLOCK) unsafe('the archive ends early: no end-of-archive marker');
  if (accepted === null && accept && out.manifest) accept(out.manifest, out.sig, out.signer);
  return out;
}

/** A fresh, empty folder under `parent` with a temporary name. */
export async function tempDirIn(parent: string, prefix: string): Promise<string> {
  await mkdir(parent, { recursive: true, mode: 0o755 });
  const dir = join(parent, `${prefix}${randomBytes(6).toString('hex')}`);
  await mkdir(dir, { mode: 0o755 });
  return dir;
}

export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export interface ArchivePart {
  name: string;
  /** The bytes, or the file to stream them from. */
  bytes?: Buffer;
  path?: string;
  size: number;
}

/** Writes a ustar archive of `parts`, in order, to `out` (temporary name, fsync, rename). */
export async function writeArchive(out: string, parts: readonly ArchivePart[]): Promise<void> {
  const tmp = `${out}.${randomBytes(4).toString('hex')}.tmp`;
  const pack = tar.pack();
  const file = createWriteStream(tmp, { mode: 0o644 });
  const written = once(file, 'close');
  pack.pipe(file);
  try {
    const mtime = new Date(0);
    for (const p of parts) {
      const header = { name: p.name, size: p.size, mode: 0o644, mtime, type: 'file' as const };
      if (p.bytes) {
        await new Promise<void>((resolve, reject) => pack.entry(header, p.bytes!, (err) => (err ? reject(err) : resolve())));
        continue;
      }
      const sink = pack.entry(header);
      const done = new Promise<void>((resolve, reject) => {
        sink.on('finish', () => resolve());
        sink.on('error', reject);
      });
      for await (const chunk of createReadStream(p.path!)) if (!sink.write(chunk as Buffer)) await once(sink, 'drain');
      sink.end(undefined);
      await done;
    }
    pack.finalize();
    await written;
    const fh = await open(tmp, 'r');
    await fh.sync();
    await fh.close();
    await rename(tmp, out);
  } catch (err) {
    pack.destroy();
    file.destroy();
    await rm(tmp, { force: true });
    throw err;
  }
}
