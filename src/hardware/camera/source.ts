import type { CameraConfig } from '../../config/index.js';
import type { Cv, VideoCapture } from './opencv.js';

export type SourceKind = 'index' | 'device' | 'gstreamer' | 'file';

/** What a configured source is: a device index, a /dev path, a GStreamer pipeline, or a file. */
export function sourceKind(source: string | number): SourceKind {
  if (typeof source === 'number') return 'index';
  if (source.includes('!')) return 'gstreamer';
  if (source.startsWith('/dev/')) return 'device';
  return 'file';
}

/**
 * A GStreamer pipeline that keeps only the newest frame: an appsink that drops instead of
 * queueing, so a slow reader gets the latest image, never a backlog.
 */
export function latestOnlyPipeline(pipeline: string): string {
  if (/appsink/.test(pipeline)) return pipeline;
  return `${pipeline} ! videoconvert ! video/x-raw,format=BGR ! appsink drop=true max-buffers=1 sync=false`;
}

/** Opens a capture with the configured size, rate and format, buffering at most one frame. */
export function openCapture(cv: Cv, cam: CameraConfig): VideoCapture {
  const kind = sourceKind(cam.source);
  let cap: VideoCapture;
  switch (kind) {
    case 'index':
      cap = new cv.VideoCapture(cam.source, cv.CAP_V4L2);
      break;
    case 'device':
      cap = new cv.VideoCapture(cam.source, cv.CAP_V4L2);
      break;
    case 'gstreamer':
      cap = new cv.VideoCapture(latestOnlyPipeline(cam.source as string), cv.CAP_GSTREAMER);
      break;
    case 'file':
      cap = new cv.VideoCapture(cam.source);
      break;
  }
  if (kind === 'index' || kind === 'device') {
    cap.set(cv.CAP_PROP_FOURCC, cv.VideoWriter.fourcc(cam.format === 'MJPG' ? 'MJPG' : 'YUYV'));
    cap.set(cv.CAP_PROP_FRAME_WIDTH, cam.width);
    cap.set(cv.CAP_PROP_FRAME_HEIGHT, cam.height);
    cap.set(cv.CAP_PROP_FPS, cam.fps);
    // One buffer: V4L2's default of four would hand out frames up to four periods old.
    cap.set(cv.CAP_PROP_BUFFERSIZE, 1);
  }
  return cap;
}
