// `node bench/glass/run.mjs --selftest`: checks the clock strip without a browser or the platform.
// 1. Publishes a clip exactly as the benchmark's publisher does, but to a pipe: every FLV video tag
//    is timed as it leaves ffmpeg, and the stream is kept.
// 2. Decodes every frame of it (ffmpeg -> raw gray -> the same decodeStrip the page uses): every
//    frame must decode, times must rise, their steps must match the frames' timestamps within a
//    frame interval, and each capture must lie between ffmpeg's start and the tag's departure.
// 3. Re-encodes it like the ladder (scale=-2:480 and -2:360, x264 superfast zerolatency at the
//    ladder's bitrates) and decodes again: the same time for every frame, nothing misread.
// 4. Corrupts decoded frames (flipped blocks, shifted strips, a blank picture): all rejected.
import { spawn, spawnSync } from "node:child_process";
import { decodeStrip, grayLuma, publisherArgs } from "./strip.mjs";

// Every frame of a file as raw 8-bit luma, full size (a few hundred frames of 720p: ~150 MB).
function ffmpegFrames(input, vf, w, h, extra = []) {
  const r = spawnSync("ffmpeg", ["-v", "error", ...extra, "-i", input, "-vf", vf, "-f", "rawvideo", "-pix_fmt", "gray", "-"], {
    maxBuffer: 2 ** 31,
  });
  if (r.status !== 0) throw new Error(`ffmpeg decode failed: ${r.stderr}`);
  const n = r.stdout.length / (w * h);
  return Array.from({ length: n }, (_, i) => r.stdout.subarray(i * w * h, (i + 1) * w * h));
}

function decodeAll(frames, w, h) {
  return frames.map((f) => decodeStrip(grayLuma(f, w, h), w, h));
}

export async function selftest({ seconds = 8, log = console.log } = {}) {
  const dir = (await import("node:fs")).mkdtempSync((await import("node:path")).join((await import("node:os")).tmpdir(), "glass-selftest-"));
  const file = `${dir}/clip.flv`;
  const failures = [];
  const check = (ok, msg) => (ok ? null : failures.push(msg));

  // 1. Publish to a pipe, timing each video tag as it leaves.
  const started = Date.now();
  const p = spawn("ffmpeg", publisherArgs("pipe:1", { seconds }), { stdio: ["ignore", "pipe", "pipe"] });
  let err = "";
  p.stderr.on("data", (d) => (err += d));
  const chunks = [];
  let buf = Buffer.alloc(0);
  let off = 13; // FLV header + first PreviousTagSize
  const departures = []; // [flv timestamp ms, wall ms] per video tag (the first is the AVC config)
  p.stdout.on("data", (d) => {
    const now = Date.now();
    chunks.push(d);
    buf = Buffer.concat([buf, d]);
    while (buf.length >= off + 11) {
      const size = buf.readUIntBE(off + 1, 3);
      if (buf.length < off + 11 + size + 4) break;
      const ts = buf.readUIntBE(off + 4, 3) | (buf[off + 7] << 24);
      if (buf[off] === 9 && buf[off + 12] === 1) departures.push([ts, now]); // AVC NALU, not the sequence header
      off += 11 + size + 4;
    }
  });
  const code = await new Promise((r) => p.on("exit", r));
  const ended = Date.now();
  if (code !== 0) throw new Error(`publisher failed (${code}): ${err}`);
  (await import("node:fs")).writeFileSync(file, Buffer.concat(chunks));

  // 2. Decode the source.
  const W = 1280, H = 720;
  const src = decodeAll(ffmpegFrames(file, "null", W, H), W, H);
  const pts = spawnSync("ffprobe", ["-v", "error", "-select_streams", "v", "-show_entries", "frame=pts_time", "-of", "csv=p=0", file])
    .stdout.toString().trim().split("\n").map(Number);
  const ok = src.filter((r) => r.ok).length;
  check(ok === src.length, `720p: ${src.length - ok} of ${src.length} frames did not decode`);
  check(src.length >= seconds * 30 - 2, `720p: only ${src.length} frames for ${seconds} s`);
  let worstStep = 0, nonMono = 0, outside = 0;
  const holds = [];
  const FRAME = 1000 / 30;
  // ffmpeg makes its first few frames at once while it probes the input, before pacing starts;
  // from then on each frame is made when it is due.
  const paced = src.findIndex((r, i) => i > 0 && r.ok && src[i - 1].ok && r.ms - src[i - 1].ms > FRAME / 2);
  for (let i = 0; i < src.length; i++) {
    const r = src[i];
    if (!r.ok) continue;
    if (r.ms < started || r.ms > ended) outside++;
    if (i > 0 && src[i - 1].ok) {
      if (r.ms < src[i - 1].ms) nonMono++;
      if (i > paced) worstStep = Math.max(worstStep, Math.abs(r.ms - src[i - 1].ms - (pts[i] - pts[i - 1]) * 1000));
    }
    if (departures[i] && i >= paced) holds.push(departures[i][1] - r.ms);
  }
  check(nonMono === 0, `720p: ${nonMono} times went backwards`);
  check(outside === 0, `720p: ${outside} times outside ffmpeg's run [${started}, ${ended}]`);
  check(worstStep <= FRAME, `720p: a capture step differs from its timestamp step by ${worstStep} ms (> one frame)`);
  check(holds.every((h) => h >= 0), `a frame left ffmpeg before its capture time (${Math.min(...holds)} ms)`);
  holds.sort((a, b) => a - b);
  const hold = { p50: holds[Math.floor(holds.length / 2)], max: holds.at(-1) };
  check(hold.p50 < 150, `capture -> leaving the publisher p50 ${hold.p50} ms (frames held before sending?)`);
  log(`720p source: ${ok}/${src.length} frames decoded, monotonic, steps match timestamps within ${worstStep.toFixed(1)} ms, ` +
    `pacing from frame ${paced}; capture -> leaving the publisher p50 ${hold.p50} ms, max ${hold.max} ms`);

  // 3. Through ladder-like encodes.
  const renditions = [];
  for (const [h, kbps] of [[480, 1400], [360, 800]]) {
    const w = Math.round((1280 * h) / 720 / 2) * 2;
    const out = `${dir}/r${h}.ts`;
    const enc = spawnSync("ffmpeg", ["-v", "error", "-i", file, "-vf", `scale=-2:${h}`, "-c:v", "libx264", "-preset", "superfast",
      "-tune", "zerolatency", "-profile:v", "main", "-pix_fmt", "yuv420p", "-force_key_frames", "expr:gte(t,n_forced*1)",
      "-b:v", `${kbps}k`, "-maxrate:v", `${Math.floor(kbps * 1.07)}k`, "-bufsize:v", `${kbps * 1.5}k`, "-an", out]);
    if (enc.status !== 0) throw new Error(`ladder encode failed: ${enc.stderr}`);
    const got = decodeAll(ffmpegFrames(out, "null", w, h), w, h);
    const good = got.filter((r) => r.ok).length;
    // The encode may drop or repeat a frame at the start (two probe frames share a timestamp), so
    // frames are matched by value: every decoded time must be one the source carries, in order.
    const known = new Set(src.filter((r) => r.ok).map((r) => r.ms));
    const times = got.filter((r) => r.ok).map((r) => r.ms);
    const wrong = times.filter((t, i) => !known.has(t) || (i > 0 && t < times[i - 1])).length;
    const minContrast = Math.min(...got.filter((r) => r.ok).map((r) => r.minContrast));
    check(wrong === 0, `${h}p: ${wrong} frames decoded to a different time than the source`);
    check(good >= got.length * 0.99, `${h}p: ${got.length - good} of ${got.length} frames did not decode`);
    renditions.push({ height: h, frames: got.length, decoded: good, wrong, min_contrast: Math.round(minContrast) });
    log(`${h}p (${w}x${h}, ${kbps}k): ${good}/${got.length} decoded, ${wrong} wrong, weakest block pair ${minContrast.toFixed(0)}/255 apart (rejects below 60)`);
  }

  // 4. Corruptions must be rejected, not counted.
  const frame = ffmpegFrames(file, "null", W, H)[Math.floor(src.length / 2)];
  const corrupt = {
    "one data block flipped": (f) => paint(f, 20, 0, 20, 40, (v) => 255 - v),
    "one check block flipped": (f) => paint(f, 55 * 20, 0, 20, 40, (v) => 255 - v),
    "strip shifted by a block": (f) => shift(f, 20),
    "blank picture": (f) => f.fill(128),
    "no strip (test pattern only)": (f) => paint(f, 0, 0, 1280, 40, () => 40),
  };
  let accepted = 0;
  for (const [name, fn] of Object.entries(corrupt)) {
    const f = Buffer.from(frame);
    fn(f);
    const r = decodeStrip(grayLuma(f, W, H), W, H);
    if (r.ok) (accepted++, failures.push(`a corrupted frame was accepted: ${name}`));
  }
  log(`corrupted frames: ${Object.keys(corrupt).length - accepted}/${Object.keys(corrupt).length} rejected`);
  // Random single-bit flips across the whole strip: every one must be caught.
  let caught = 0;
  for (let bit = 4; bit < 60; bit++) {
    const f = Buffer.from(frame);
    paint(f, bit * 20, 0, 20, 20, (v) => 255 - v); // row 1 only, complement row 2 too
    paint(f, bit * 20, 20, 20, 20, (v) => 255 - v);
    if (!decodeStrip(grayLuma(f, W, H), W, H).ok) caught++;
  }
  check(caught === 56, `single-bit errors: only ${caught} of 56 caught`);
  log(`single consistent bit flips (both rows): ${caught}/56 caught by the check`);

  function paint(f, x0, y0, w, h, fn) {
    for (let y = y0; y < y0 + h; y++) for (let x = x0; x < x0 + w; x++) f[y * W + x] = fn(f[y * W + x]);
  }
  function shift(f, dx) {
    for (let y = 0; y < 40; y++) f.copyWithin(y * W + dx, y * W, y * W + W - dx);
  }
  (await import("node:fs")).rmSync(dir, { recursive: true, force: true });
  return { ok: failures.length === 0, failures, frames: src.length, publisher_hold_ms: hold, renditions };
}
