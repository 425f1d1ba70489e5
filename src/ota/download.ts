// Resumable download of a bundle archive. First commit: the interface.

export type DownloadFailureCode = 'http' | 'network' | 'timeout' | 'too-large' | 'hash-mismatch' | 'size-mismatch' | 'aborted' | 'disk-full' | 'io';

export class DownloadFailed extends Error {
  constructor(
    readonly code: DownloadFailureCode,
    message: string,
  ) {
    super(message);
    this.name = 'DownloadFailed';
  }
}

export interface DownloadOptions {
  sha256: string;
  size: number;
  signal?: AbortSignal;
  onProgress?(bytes: number, total: number): void;
  maxRetries?: number;
  timeoutMs?: number;
}

/** Resumable HTTP(S) GET into `dest`. Throws DownloadFailed. */
export function download(url: string, dest: string, opts: DownloadOptions): Promise<void> {
  void url, dest, opts;
  return Promise.reject(new DownloadFailed('io', 'download: not implemented yet'));
}
