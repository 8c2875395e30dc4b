// The in-page probe, installed with page.addInitScript before the watch page's own scripts run.
// It finds the app's <video> (played by the app's hls.js), and on every presented frame
// (requestVideoFrameCallback) draws the strip's corner of the frame into a canvas, decodes the
// capture time and records Date.now() - capture with the frame's height and hls.js's level.
import { decodeStrip } from "./strip.mjs";

function probe(decodeStrip) {
  const g = (window.__glass = {
    timeOrigin: performance.timeOrigin,
    firstFrame: null, // { perf: ms since navigation start, wall: Date.now() }
    frames: [], // [wall ms, latency ms or null, frame height, hls level, reject reason or null]
    rejected: {},
    events: [], // [type, wall ms]
    player: [], // once a second: [wall, hls.latency, hls.targetLatency, playbackRate, buffered ahead s, level, level height]
    videos: 0,
    errors: [],
  });
  const canvas = document.createElement("canvas");
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  let current = null;

  function attach(v) {
    current = v;
    g.videos++;
    for (const type of ["waiting", "playing", "stalled", "seeking", "seeked", "pause", "ended", "error"])
      v.addEventListener(type, () => g.events.push([type, Date.now()]));
    const onFrame = (_now, meta) => {
      if (v !== current) return;
      const wall = Date.now();
      if (!g.firstFrame) g.firstFrame = { perf: performance.now(), wall };
      const w = v.videoWidth, h = v.videoHeight;
      const hls = v.__hls;
      const level = hls ? hls.currentLevel : -1;
      let lat = null, reason = null;
      try {
        // Only the corner holding the strip: 1200x40 of 1280x720, scaled to this rendition.
        const rw = Math.min(w, Math.ceil((1200 * w) / 1280) + 2), rh = Math.min(h, Math.ceil((40 * h) / 720) + 2);
        if (canvas.width !== rw || canvas.height !== rh) (canvas.width = rw), (canvas.height = rh);
        ctx.drawImage(v, 0, 0, rw, rh, 0, 0, rw, rh);
        const px = ctx.getImageData(0, 0, rw, rh).data;
        const r = Math.max(1, Math.floor((20 * w) / 1280 / 5));
        const lumaAt = (x, y) => {
          const cx = Math.floor(x), cy = Math.floor(y);
          let sum = 0, n = 0;
          for (let yy = Math.max(0, cy - r); yy <= Math.min(rh - 1, cy + r); yy++)
            for (let xx = Math.max(0, cx - r); xx <= Math.min(rw - 1, cx + r); xx++) {
              const o = (yy * rw + xx) * 4;
              sum += 0.299 * px[o] + 0.587 * px[o + 1] + 0.114 * px[o + 2];
              n++;
            }
          return sum / n;
        };
        const d = decodeStrip(lumaAt, w, h);
        if (d.ok) lat = wall - d.ms;
        else reason = d.reason;
      } catch (e) {
        reason = `exception: ${e}`;
      }
      if (reason) g.rejected[reason] = (g.rejected[reason] ?? 0) + 1;
      g.frames.push([wall, lat, meta?.height ?? h, level, reason]);
      v.requestVideoFrameCallback(onFrame);
    };
    v.requestVideoFrameCallback(onFrame);
  }

  // The app creates the <video> when the stream is live (and may replace it): look for it often.
  setInterval(() => {
    const v = document.querySelector("video");
    if (v && v !== current) attach(v);
  }, 20);
  // The player's own view, once a second: how far behind live hls.js thinks it is, and why.
  setInterval(() => {
    if (!current) return;
    const hls = current.__hls;
    let ahead = 0;
    const b = current.buffered;
    for (let i = 0; i < b.length; i++)
      if (b.start(i) <= current.currentTime && current.currentTime <= b.end(i)) ahead = b.end(i) - current.currentTime;
    const lvl = hls ? hls.currentLevel : -1;
    g.player.push([Date.now(), hls?.latency ?? null, hls?.targetLatency ?? null, current.playbackRate, ahead, lvl, hls?.levels?.[lvl]?.height ?? null]);
  }, 1000);
}

// The script text for page.addInitScript.
export function probeScript() {
  return `(${probe.toString()})(${decodeStrip.toString()});`;
}
