// The clock strip: the capture wall-clock time (ms since the epoch) burned into every frame as
// big black/white blocks, and its decoder (shared by the browser probe and the self-test).
//
// Layout, in the 1280x720 source picture (top-left corner, 1200x40 px):
//   two rows of 60 blocks, 20x20 px each; row 2 is the exact complement of row 1, so every bit
//   is read by comparing two blocks (no absolute threshold), and a block pair with too little
//   contrast rejects the frame.
//   row 1 blocks:  0-3   marker 1010 (finds and verifies alignment)
//                  4-47  44 bits of T = floor(time(0)*1000), most significant first
//                  48-59 12-bit check, T mod 4093 (a prime: every single- or burst-bit error changes
//                        T by a non-multiple of 4093, so it is caught; random errors pass 1 in 4093)
// At 360p a block is 10x10 px, at 480p 13.3 px: both decode with the centre sampled.

export const BLOCKS = 60;
export const BLOCK_PX = 20;
export const CHECK_MOD = 4093;

// The geq expression for a 120x1 gray strip: X 0-59 is row 1, X 60-119 its complement. T is read
// once per frame, at X=0 (a 1-row picture is one slice, evaluated in order by one thread), and
// kept in variable 0, so every block of a frame carries the same instant.
const EXPR = [
  "st(0,if(eq(X,0),floor(time(0)*1000),ld(0)))",
  "st(1,mod(X,60))",
  "st(2,if(lt(ld(1),4),1-mod(ld(1),2),if(lt(ld(1),48),mod(floor(ld(0)/pow(2,47-ld(1))),2),mod(floor(mod(ld(0),4093)/pow(2,59-ld(1))),2))))",
  "255*abs(ld(2)-gte(X,60))",
].join(";");

// A lavfi graph: the 720p30 test pattern with the strip overlaid (`out0`) and a tone (`out1`).
export function sourceGraph({ width = 1280, height = 720, fps = 30 } = {}) {
  return [
    `testsrc2=size=${width}x${height}:rate=${fps}[bg]`,
    `color=c=black:s=${2 * BLOCKS}x1:r=${fps},format=gray,geq=lum='${EXPR}',split[a][b]`,
    `[a]crop=${BLOCKS}:1:0:0[r1]`,
    `[b]crop=${BLOCKS}:1:${BLOCKS}:0[r2]`,
    `[r1][r2]vstack,scale=${BLOCKS * BLOCK_PX}:${2 * BLOCK_PX}:flags=neighbor[strip]`,
    `[bg][strip]overlay=0:0,format=yuv420p[out0]`,
    `sine=frequency=660:sample_rate=48000[out1]`,
  ].join(";");
}

// ffmpeg arguments for a publisher "as OBS would": 720p30 pattern + strip, a 660 Hz tone,
// x264 veryfast/zerolatency, 2 s keyframes, AAC, real time.
export function publisherArgs(output, { seconds = 60, format = "flv" } = {}) {
  return [
    "-hide_banner", "-loglevel", "error", "-nostdin",
    // One input holding both the picture and the tone: with two inputs ffmpeg 5.1 reads each in
    // its own thread ahead of `-re` (8 queued packets), so frames were captured ~330 ms before
    // they left; with one input each frame is made when it is due and sent at once.
    "-re", "-f", "lavfi", "-i", sourceGraph(),
    "-t", String(seconds),
    "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-g", "60", "-keyint_min", "60",
    "-b:v", "3000k", "-maxrate", "3000k", "-bufsize", "6000k", "-pix_fmt", "yuv420p",
    "-c:a", "aac", "-b:a", "128k", "-ar", "48000",
    "-f", format, output,
  ];
}

// Decodes one frame. `lumaAt(x, y)` returns the luma (0-255) around pixel (x, y) of a frame of
// `width` x `height`. Self-contained (no outer references): it is injected into the page as text.
export function decodeStrip(lumaAt, width, height) {
  const N = 60, B = 20, MOD = 4093, MIN_CONTRAST = 60;
  const sx = width / 1280, sy = height / 720;
  const y1 = 0.5 * B * sy, y2 = 1.5 * B * sy;
  const bits = [];
  let minContrast = 255;
  for (let i = 0; i < N; i++) {
    const x = (i + 0.5) * B * sx;
    const a = lumaAt(x, y1), b = lumaAt(x, y2);
    minContrast = Math.min(minContrast, Math.abs(a - b));
    bits.push(a > b ? 1 : 0);
  }
  if (bits[0] !== 1 || bits[1] !== 0 || bits[2] !== 1 || bits[3] !== 0) return { ok: false, reason: "marker" };
  if (minContrast < MIN_CONTRAST) return { ok: false, reason: "contrast" };
  let t = 0;
  for (let i = 4; i < 48; i++) t = t * 2 + bits[i];
  let check = 0;
  for (let i = 48; i < 60; i++) check = check * 2 + bits[i];
  if (t % MOD !== check) return { ok: false, reason: "checksum" };
  return { ok: true, ms: t, minContrast };
}

// lumaAt over a raw 8-bit gray (or any single-plane) buffer: the mean of a small square around
// the point, a fifth of a block wide.
export function grayLuma(buf, width, height, stride = width) {
  const r = Math.max(1, Math.floor((BLOCK_PX * width) / 1280 / 5));
  return (x, y) => {
    const cx = Math.floor(x), cy = Math.floor(y);
    let sum = 0, n = 0;
    for (let yy = Math.max(0, cy - r); yy <= Math.min(height - 1, cy + r); yy++)
      for (let xx = Math.max(0, cx - r); xx <= Math.min(width - 1, cx + r); xx++) (sum += buf[yy * stride + xx]), n++;
    return sum / n;
  };
}
