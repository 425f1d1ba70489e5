// Video through ffmpeg, in its own process (so encoding never shares a thread with reflex):
// raw BGR frames in on stdin, H.264 (libx264) out into a fragmented MP4, which keeps every
// complete fragment if the daemon or ffmpeg is killed (a plain MP4 writes its index last and
// is lost whole). When the episode closes, the fragments are remuxed (no re-encode) into a
// plain MP4 with its index at the front, cut to exactly the number of data rows.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, fsyncSync, openSync } from 'node:fs';
import { ReflexError } from '../core/index.js';

export interface EncoderOptions {
  ffmpeg: string;
  width: number;
  height: number;
  fps: number;
  /** Fragmented MP4 written while recording. */
  out: string;
}

/**
 * One camera's encoder for one episode. Constant frame rate: frame k's time is k / fps
 * exactly, whatever the camera's clock did, so LeRobot's per-frame timestamp check holds.
 */
export class VideoEncoder {
  private readonly proc: ChildProcess;
  private readonly exited: Promise<number | null>;
  private stderr = '';
  /** Frames handed to ffmpeg and not yet taken by the pipe. */
  pending = 0;
  /** Their release callbacks: each called once, when the pipe took the frame or ffmpeg is gone. */
  private readonly outstanding = new Set<() => void>();
  failed: string | null = null;

  constructor(private readonly o: EncoderOptions) {
    const gop = String(Math.max(1, Math.round(o.fps)));
    this.proc = spawn(
      o.ffmpeg,
      [
        '-hide_banner', '-loglevel', 'error', '-nostdin',
        '-f', 'rawvideo', '-pix_fmt', 'bgr24', '-s', `${o.width}x${o.height}`, '-framerate', String(o.fps), '-i', 'pipe:0',
        // ultrafast: a Jetson Orin Nano has no hardware encoder, and the robot's cores matter more
        // than bytes on its disk (about 2x the size of veryfast).
        '-an', '-c:v', 'libx264', '-preset', 'ultrafast',
        // No B-frames and no lookahead: frames reach the file about as soon as they are encoded,
        // so a kill loses at most the fragment being written (one GOP, about a second).
        '-tune', 'zerolatency', '-g', gop, '-keyint_min', gop, '-pix_fmt', 'yuv420p',
        '-movflags', 'frag_keyframe+empty_moov+default_base_moof', '-f', 'mp4', '-y', o.out,
      ],
      { stdio: ['pipe', 'ignore', 'pipe'] },
    );
    this.proc.stderr!.setEncoding('utf8');
    this.proc.stderr!.on('data', (d: string) => (this.stderr = (this.stderr + d).slice(-2000)));
    this.proc.stdin!.on('error', (err) => (this.failed ??= `ffmpeg's input failed: ${err.message}`));
    this.exited = new Promise((resolve) => {
      this.proc.once('error', (err) => {
        this.failed ??= `ffmpeg could not run: ${err.message}`;
        resolve(null);
      });
      this.proc.once('exit', (code) => {
        if (code !== 0 && this.failed === null) this.failed = `ffmpeg exited with ${code}: ${this.stderr.trim()}`;
        this.releaseAll();
        resolve(code);
      });
    });
  }

  /** Queues one frame (its bytes must stay untouched until `done` is called). */
  write(frame: Uint8Array, done: () => void): void {
    if (this.failed !== null) {
      done();
      return;
    }
    this.pending++;
    const release = () => {
      if (!this.outstanding.delete(release)) return;
      this.pending--;
      done();
    };
    this.outstanding.add(release);
    this.proc.stdin!.write(frame, release);
  }

  /** A killed ffmpeg never takes what was queued: its buffers go back to the pool all the same. */
  private releaseAll(): void {
    for (const release of [...this.outstanding]) release();
  }

  /** Ends the input and waits for ffmpeg to finish the file. */
  async finish(timeoutMs: number): Promise<void> {
    this.proc.stdin!.end();
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), timeoutMs);
    await this.exited;
    clearTimeout(timer);
    if (this.failed !== null) throw new ReflexError('COMMAND_FAILED', this.failed);
  }

  /** Stops the encoder without finishing (a dropped episode). */
  async abort(): Promise<void> {
    this.proc.stdin!.destroy();
    this.proc.kill('SIGKILL');
    await this.exited;
    this.releaseAll();
  }
}

function run(cmd: string, args: string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => (stdout = (stdout + d).slice(-100_000)));
    p.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-4000)));
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.once('error', (err) => {
      clearTimeout(timer);
      resolve({ code: null, stdout, stderr: err.message });
    });
    p.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Frames (packets) in the first video stream of `file` that a demuxer can read; 0 when none or unreadable. */
export async function countFrames(ffprobe: string, file: string, timeoutMs = 60_000): Promise<number> {
  const r = await run(ffprobe, ['-v', 'error', '-select_streams', 'v:0', '-count_packets', '-show_entries', 'stream=nb_read_packets', '-of', 'csv=p=0', file], timeoutMs);
  const n = Number.parseInt(r.stdout.trim(), 10);
  return r.code === 0 && Number.isFinite(n) ? n : 0;
}

/**
 * Remuxes `from` (fragmented) into a plain MP4 at `to` with its index at the front, keeping
 * the first `frames` frames, and syncs it. No re-encoding.
 */
export async function remux(ffmpeg: string, from: string, to: string, frames: number, timeoutMs = 120_000): Promise<void> {
  const r = await run(ffmpeg, ['-hide_banner', '-loglevel', 'error', '-nostdin', '-i', from, '-map', '0:v:0', '-c', 'copy', '-frames:v', String(frames), '-movflags', '+faststart', '-f', 'mp4', '-y', to], timeoutMs);
  if (r.code !== 0) throw new ReflexError('COMMAND_FAILED', `ffmpeg could not remux ${from}: ${r.stderr.trim() || `exit ${r.code}`}`);
  const fd = openSync(to, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Whether `ffmpeg` runs and has libx264; the reason when not. */
export async function checkEncoder(ffmpeg: string): Promise<string | null> {
  const r = await run(ffmpeg, ['-hide_banner', '-encoders'], 10_000);
  if (r.code === null) return `${ffmpeg} is not installed or cannot run (${r.stderr.trim()})`;
  if (!/libx264/.test(r.stdout)) return `${ffmpeg} has no libx264 encoder`;
  return null;
}
