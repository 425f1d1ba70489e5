// What the simulated camera sees: a top-down view of the simulated arm (base yaw, shoulder and
// elbow pitch) over a table, and the target it should reach. Drawn with OpenCV.
import type { Cv, Mat } from '../hardware/camera/index.js';

export interface Scene {
  /** Joint angles in radians: base, shoulder, elbow. */
  joints: readonly number[];
  /** Target on the table, metres from the base. */
  target: { x: number; y: number };
}

export const ARM = { upperM: 0.25, foreM: 0.25 } as const;

/** End-effector position on the table (metres), seen from above. */
export function endEffector(joints: readonly number[]): { x: number; y: number } {
  const [base = 0, shoulder = 0, elbow = 0] = joints;
  const reach = ARM.upperM * Math.cos(shoulder) + ARM.foreM * Math.cos(shoulder + elbow);
  return { x: reach * Math.cos(base), y: reach * Math.sin(base) };
}

/** Renders the scene into a new BGR image of `width` x `height` (1.2 m across). */
export function render(cv: Cv, scene: Scene, width = 640, height = 480): Mat {
  const img = new cv.Mat(height, width, cv.CV_8UC3, [60, 60, 60]);
  const px = width / 1.2;
  const at = (x: number, y: number) => new cv.Point2(Math.round(width / 2 + x * px), Math.round(height / 2 - y * px));
  // The reachable disc, so that the picture has structure a policy can anchor to.
  img.drawCircle(at(0, 0), Math.round((ARM.upperM + ARM.foreM) * px), new cv.Vec3(90, 90, 90), 2);
  img.drawCircle(at(scene.target.x, scene.target.y), 14, new cv.Vec3(0, 0, 230), -1);
  const [base = 0, shoulder = 0] = scene.joints;
  const elbowR = ARM.upperM * Math.cos(shoulder);
  const elbowAt = at(elbowR * Math.cos(base), elbowR * Math.sin(base));
  const ee = endEffector(scene.joints);
  img.drawLine(at(0, 0), elbowAt, new cv.Vec3(200, 200, 200), 10);
  img.drawLine(elbowAt, at(ee.x, ee.y), new cv.Vec3(200, 160, 60), 8);
  img.drawCircle(at(0, 0), 16, new cv.Vec3(40, 40, 40), -1);
  img.drawCircle(at(ee.x, ee.y), 9, new cv.Vec3(0, 220, 0), -1);
  return img;
}
