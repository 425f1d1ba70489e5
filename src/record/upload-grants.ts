// The fleet's side of store and forward (`reflex fleet uploads` runs it), for a team that has a broker and
// a bucket (AWS S3, or any S3-compatible store: MinIO, Ceph, R2...). It holds the bucket's keys
// so the robots do not: for every device's pending list it answers, retained, with presigned
// URLs for exactly the files offered (one PUT, or a multipart upload for a file bigger than a
// part, continued when the robot names one it began). Objects land at
// <prefix><device>/<episode id>/<file>. Presigning is aws4's (SigV4, query-string form).
import aws4 from 'aws4';
import mqtt, { type MqttClient } from 'mqtt';
import { ReflexError, errorMessage } from '../core/index.js';
import { GRANT_MAX_BYTES, MAX_PARTS, MIN_PART_BYTES, parsePending, uploadTopics, type GrantedFile, type PendingUploads, type UploadGrant } from './upload-protocol.js';
import { isId } from '../ota/index.js';

export interface GrantOptions {
  /** http(s)://host[:port] of the S3 API; path-style addressing (bucket in the path). */
  endpoint: string;
  bucket: string;
  region: string;
  /** Key prefix, e.g. "fleet/"; empty for the bucket's root. */
  prefix: string;
  expiresS: number;
  partBytes: number;
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
}

/** Bucket names and prefixes kept to characters that need no escaping in a URL or a signature. */
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const PREFIX = /^([A-Za-z0-9_.-]+\/)*$/;
/** The pending document's own rules (upload-protocol.ts), checked again where keys are made. */
const EPISODE = /^[0-9a-f-]{36}$/;
const FILE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/** The least time between two grants for one device. */
export const GRANT_INTERVAL_MS = 1000;

export class Presigner {
  private readonly base: URL;

  constructor(private readonly o: GrantOptions) {
    this.base = new URL(o.endpoint);
    if (!/^https?:$/.test(this.base.protocol) || this.base.pathname !== '/') throw new ReflexError('BAD_REQUEST', `--endpoint ${o.endpoint}: want http(s)://host[:port]`);
    if (!BUCKET.test(o.bucket)) throw new ReflexError('BAD_REQUEST', `--bucket ${o.bucket}: not an S3 bucket name`);
    if (!PREFIX.test(o.prefix) || o.prefix.split('/').some((p) => p === '.' || p === '..')) throw new ReflexError('BAD_REQUEST', `--prefix ${o.prefix}: letters, digits, _ . - in parts ending with /`);
    if (o.partBytes < MIN_PART_BYTES) throw new ReflexError('BAD_REQUEST', `--part-mb: S3 parts are at least ${MIN_PART_BYTES / 1024 ** 2} MiB`);
  }

  /** Refuses anything that could step out of <prefix><device>/ (grant() may be handed unchecked input). */
  key(device: string, episode: string, file: string): string {
    if (!isId(device)) throw new ReflexError('BAD_REQUEST', `device ${JSON.stringify(device)}: not a device id`);
    if (!EPISODE.test(episode)) throw new ReflexError('BAD_REQUEST', `episode ${JSON.stringify(episode)}: not an episode id`);
    if (!FILE.test(file)) throw new ReflexError('BAD_REQUEST', `file ${JSON.stringify(file)}: not a plain file name`);
    return `${this.o.prefix}${device}/${episode}/${file}`;
  }

  /** A presigned URL for `method` on `key` (with extra query parameters). */
  url(method: 'PUT' | 'POST' | 'GET', key: string, query = ''): string {
    const q = `${query}${query ? '&' : ''}X-Amz-Expires=${this.o.expiresS}`;
    const signed = aws4.sign({ host: this.base.host, path: `/${this.o.bucket}/${key}?${q}`, method, service: 's3', region: this.o.region, signQuery: true }, this.o.credentials);
    return `${this.base.protocol}//${this.base.host}${signed.path}`;
  }

  /** Begins a multipart upload (a signed request: this side holds the keys); its upload id. */
  async beginMultipart(key: string): Promise<string> {
    const signed = aws4.sign({ host: this.base.host, path: `/${this.o.bucket}/${key}?uploads=`, method: 'POST', service: 's3', region: this.o.region }, this.o.credentials);
    const res = await fetch(`${this.base.protocol}//${this.base.host}${signed.path}`, { method: 'POST', headers: signed.headers as Record<string, string>, signal: AbortSignal.timeout(30_000) });
    const text = await res.text();
    const id = /<UploadId>([^<]+)<\/UploadId>/.exec(text)?.[1];
    if (!res.ok || id === undefined) throw new Error(`CreateMultipartUpload ${key}: HTTP ${res.status} ${text.slice(0, 200)}`);
    return id;
  }

  /**
   * The grant answering one device's pending list: as many of its episodes as fit in one grant
   * document (the robot asks again for the rest once these are up).
   */
  async grant(device: string, pending: PendingUploads): Promise<UploadGrant> {
    const episodes: UploadGrant['episodes'] = [];
    let size = 64;
    for (const ep of pending.episodes) {
      const files: GrantedFile[] = [];
      for (const f of ep.files) {
        const key = this.key(device, ep.id, f.name);
        if (f.bytes <= this.o.partBytes) {
          files.push({ name: f.name, put: this.url('PUT', key) });
          continue;
        }
        const partBytes = this.o.partBytes;
        const n = Math.max(1, Math.ceil(f.bytes / partBytes));
        if (n > MAX_PARTS) throw new Error(`${key}: ${f.bytes} bytes need more than ${MAX_PARTS} parts; raise --part-mb`);
        const uploadId = f.uploadId ?? (await this.beginMultipart(key));
        const id = encodeURIComponent(uploadId);
        const parts = Array.from({ length: n }, (_, i) => this.url('PUT', key, `partNumber=${i + 1}&uploadId=${id}`));
        files.push({ name: f.name, multipart: { uploadId, partBytes, parts, complete: this.url('POST', key, `uploadId=${id}`) } });
      }
      const entry = { id: ep.id, files };
      size += JSON.stringify(entry).length + 1;
      if (size > GRANT_MAX_BYTES) {
        if (episodes.length === 0) throw new Error(`episode ${ep.id}: its URLs do not fit in one grant (${GRANT_MAX_BYTES} bytes); raise --part-mb`);
        break;
      }
      episodes.push(entry);
    }
    return { seq: pending.seq, episodes };
  }
}

/** Answers every device's pending list until stopped; `say` gets a line per grant or refusal. */
export async function serveGrants(broker: string, presigner: Presigner, say: (line: string) => void, minIntervalMs = GRANT_INTERVAL_MS): Promise<{ client: MqttClient; stop: () => Promise<void> }> {
  const client = await mqtt.connectAsync(broker, { protocolVersion: 5, connectTimeout: 10_000, reconnectPeriod: 2000 }).catch((err: unknown) => {
    throw new ReflexError('NOT_CONNECTED', `cannot reach the broker at ${broker}: ${errorMessage(err)}`, { disconnected: true });
  });
  // Per device, only its newest list waits, and lists are answered at most once a
  // minInterval: a device that floods lists (a bug, or a hostile one) costs one presign and at
  // most a few CreateMultipartUploads a second, never a queue that grows with the flood.
  const newest = new Map<string, PendingUploads>();
  const serving = new Set<string>();
  const lastAt = new Map<string, number>();
  let stopped = false;
  const serve = async (device: string) => {
    serving.add(device);
    try {
      for (let pending = newest.get(device); pending !== undefined && !stopped; pending = newest.get(device)) {
        const wait = (lastAt.get(device) ?? -Infinity) + minIntervalMs - Date.now();
        if (wait > 0) {
          await new Promise((r) => setTimeout(r, wait));
          continue; // a newer list may have come meanwhile
        }
        newest.delete(device);
        lastAt.set(device, Date.now());
        // Only the times still able to delay a grant are worth keeping, whatever ids appear.
        if (lastAt.size > 10_000) for (const [d, t] of lastAt) if (Date.now() - t >= minIntervalMs) lastAt.delete(d);
        if (pending.episodes.length === 0) continue;
        try {
          const grant = await presigner.grant(device, pending);
          await client.publishAsync(uploadTopics.grant(device), JSON.stringify(grant), { qos: 1, retain: true });
          const files = grant.episodes.reduce((a, e) => a + e.files.length, 0);
          say(`${device}: granted ${grant.episodes.length} episodes, ${files} files (${pending.waiting} waiting, ${(pending.waitingBytes / 1024 ** 2).toFixed(1)} MB)`);
        } catch (err) {
          say(`${device}: no grant: ${errorMessage(err)}`);
        }
      }
    } finally {
      serving.delete(device);
    }
  };
  client.on('message', (topic, payload) => {
    const device = topic.split('/')[2] ?? '';
    if (!isId(device) || payload.length === 0) return;
    const pending = parsePending(payload);
    if (pending === null) {
      say(`${device}: pending list refused (not a pending document)`);
      return;
    }
    newest.set(device, pending);
    if (!serving.has(device)) void serve(device);
  });
  await client.subscribeAsync(uploadTopics.allPending, { qos: 1 });
  return {
    client,
    stop: async () => {
      stopped = true;
      await client.endAsync();
    },
  };
}
