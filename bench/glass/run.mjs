#!/usr/bin/env node
// Glass-to-glass latency as a viewer sees it: `onair up` as a user starts it, a publisher as OBS
// would send (720p30 test pattern + tone, x264 veryfast/zerolatency, 2 s GOP, AAC, RTMP) with the
// capture wall-clock time burned into every frame (strip.mjs), and the web app's own watch page
// (hls.js) in headless Chromium, decoding that time from every presented frame (probe.mjs).
//
//   node bench/glass/run.mjs [--modes hls,llhls] [--seconds 60] [--warmup 10] [--tries 5]
//                            [--join-after 10] [--rendition auto|720|480|360] [--port-wait 300]
//                            [--out FILE] [--selftest] [--no-selftest]
//
// Needs Postgres/Redis/NATS (scripts/services.sh), ffmpeg, /usr/bin/chromium, a release build of
// `onair` ($ONAIR_BIN, else $CARGO_TARGET_DIR/release/onair, else target/release/onair) and the
// built web app (web/dist). Uses the default ports (8080, 1935, 8090): nothing else may hold them.
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { createConnection } from "node:net";
import { cpus, loadavg, tmpdir, totalmem } from "node:os";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { createRequire } from "node:module";
import { publisherArgs } from "./strip.mjs";
import { probeScript } from "./probe.mjs";
import { selftest } from "./selftest.mjs";
import { startEdge } from "../../web/tests/support/edge.mjs";

const ROOT = resolve(import.meta.dirname, "../..");
const { chromium } = createRequire(join(ROOT, "web/package.json"))("playwright-core");

// What each mode asks of the platform. Standard HLS is all there is today; `llhls` is wired by
// setting ONAIR_LATENCY=low for `onair up` (and the env/args below can be changed in one place).
// The result records what the origin actually served (a playlist with EXT-X-PART is LL-HLS), so a
// mode the binary does not implement yet is labelled by what it really measured.
// `edge`: the viewer plays through an nginx edge (examples/edge, a CDN stand-in) in front of the
// origin, as the only delivery base (the origin stays last on its list).
const MODES = {
  hls: { env: { ONAIR_LATENCY: "normal" }, args: [] },
  llhls: { env: { ONAIR_LATENCY: "low" }, args: [] },
  "llhls-cdn": { env: { ONAIR_LATENCY: "low" }, args: [], edge: true },
};
const EDGE = { name: "edge", listen: "127.0.0.1:8181", origin: "127.0.0.1:8090", edgeSecret: `glass-${Math.random().toString(36).slice(2)}` };

const opts = parseArgs(process.argv.slice(2));
const BIN = process.env.ONAIR_BIN ?? join(process.env.CARGO_TARGET_DIR ?? join(ROOT, "target"), "release/onair");
const BASE = "http://127.0.0.1:8080";
const RUN = Math.random().toString(36).slice(2, 8);
const DB = "onair_glass";
const CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required"];

const children = new Set(); // every process this script started, for cleanup
let browser = null;
const log = (...a) => console.error(`[glass ${new Date().toISOString().slice(11, 19)}]`, ...a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function parseArgs(argv) {
  const o = { portWait: 300, rendition: "auto", modes: ["hls"], seconds: 60, warmup: 10, tries: 5, joinAfter: 10, selftest: false, preflight: true, out: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => argv[++i];
    if (a === "--mode" || a === "--modes") o.modes = next().split(",").map((s) => s.trim()).filter(Boolean);
    else if (a === "--seconds") o.seconds = +next();
    else if (a === "--warmup") o.warmup = +next();
    else if (a === "--tries") o.tries = +next();
    else if (a === "--join-after") o.joinAfter = +next();
    else if (a === "--rendition") o.rendition = next();
    else if (a === "--port-wait") o.portWait = +next();
    else if (a === "--selftest") o.selftest = true;
    else if (a === "--no-selftest") o.preflight = false;
    else if (a === "--out") o.out = next();
    else if (a === "-h" || a === "--help") {
      const lines = readFileSync(new URL(import.meta.url), "utf8").split("\n");
      console.log(lines.slice(1, lines.findIndex((l) => l.startsWith("import"))).join("\n"));
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  for (const m of o.modes) if (!MODES[m]) throw new Error(`unknown mode ${m} (known: ${Object.keys(MODES).join(", ")})`);
  return o;
}

// ---------------------------------------------------------------- processes

function track(child, name) {
  children.add(child);
  child.name = name;
  child.on("exit", () => children.delete(child));
  return child;
}

// SIGINT (graceful: onair stops its encoders), then SIGKILL of the whole process group.
async function stop(child, graceMs = 15_000) {
  if (!child || child.exitCode != null || child.signalCode != null) return;
  const exited = new Promise((r) => child.once("exit", r));
  try { process.kill(-child.pid, "SIGINT"); } catch { child.kill("SIGINT"); }
  if (await Promise.race([exited.then(() => true), sleep(graceMs).then(() => false)])) return;
  log(`${child.name} did not stop in ${graceMs} ms: killing it`);
  try { process.kill(-child.pid, "SIGKILL"); } catch { child.kill("SIGKILL"); }
  await exited;
}

async function cleanup() {
  try { await browser?.close(); } catch {}
  browser = null;
  await Promise.all([...children].map((c) => stop(c)));
}

for (const sig of ["SIGINT", "SIGTERM"])
  process.on(sig, async () => {
    log(`${sig}: stopping everything`);
    await cleanup();
    process.exit(130);
  });

function portOpen(port) {
  return new Promise((r) => {
    const s = createConnection({ host: "127.0.0.1", port }, () => (s.destroy(), r(true)));
    s.on("error", () => r(false));
  });
}

async function startPlatform(mode, workdir) {
  // The default ports are shared with every other `onair up` on the machine (tests, smoke runs):
  // wait for them to be free rather than fail (or measure someone else's platform), and start
  // again if another one took them between the check and the bind.
  const until = Date.now() + opts.portWait * 1000;
  for (let said = false; ; await sleep(2000)) {
    const busy = [];
    for (const port of [8080, 1935, 8090]) if (await portOpen(port)) busy.push(port);
    if (busy.length) {
      if (Date.now() > until) throw new Error(`ports ${busy.join(", ")} still in use after ${opts.portWait} s (another onair up?)`);
      if (!said) (said = true), log(`ports ${busy.join(", ")} are in use (another onair up?): waiting up to ${opts.portWait} s`);
      continue;
    }
    try {
      return await launchPlatform(mode, workdir);
    } catch (e) {
      if (!/Address already in use/.test(e.message) || Date.now() > until) throw e;
      log("another process took the ports as onair started: waiting again");
    }
  }
}

async function launchPlatform(mode, workdir) {
  const prefix = `glass${RUN}${mode}`;
  const args = ["up", "--demo", "false", "--database-url", `postgres://localhost/${DB}`,
    "--redis-prefix", `${prefix}:`, "--nats-prefix", prefix, ...MODES[mode].args];
  const edgeEnv = MODES[mode].edge
    ? { ONAIR_PLAYBACK_BASES: `${EDGE.name}=http://${EDGE.listen}/hls`, ONAIR_EDGE_SECRET: EDGE.edgeSecret }
    : {};
  const child = track(spawn(BIN, args, {
    cwd: workdir, detached: true, stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "warn", ...MODES[mode].env, ...edgeEnv },
  }), `onair up (${mode})`);
  let out = "";
  await new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`onair up did not start in 60 s:\n${out}`)), 60_000);
    child.stdout.on("data", (d) => {
      out += d;
      if (out.includes("  playback ")) (clearTimeout(timer), ok());
    });
    child.stderr.on("data", (d) => {
      out += d;
      if (out.length > 200_000) out = out.slice(-100_000);
    });
    child.on("exit", (c) => (clearTimeout(timer), fail(new Error(`onair up exited (${c}):\n${out}`))));
  });
  child.log = () => out;
  return child;
}

function publish(url, seconds) {
  const child = track(spawn("ffmpeg", publisherArgs(url, { seconds }), { detached: true, stdio: ["ignore", "ignore", "pipe"] }), "publisher");
  child.err = "";
  child.stderr.on("data", (d) => (child.err += d));
  return child;
}

// ---------------------------------------------------------------- API

async function api(path, { token, body } = {}) {
  const res = await fetch(`${BASE}${path}`, {
    method: body ? "POST" : "GET",
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

async function register(name) {
  const r = await api("/api/users/register", { body: { username: name, email: `${name}@example.com`, password: "correct horse battery" } });
  if (r.status !== 201) throw new Error(`register ${name}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.access_token;
}

const keys = new Map(); // token -> stream key (shown by the first start only)
async function startStream(token, title) {
  const r = await api("/api/streams/start", { token, body: { title, category: "games" } });
  if (r.status !== 201) throw new Error(`start stream: ${r.status} ${JSON.stringify(r.body)}`);
  if (r.body.ingest.stream_key) keys.set(token, r.body.ingest.stream_key);
  return { id: r.body.stream.id, ingest: `${r.body.ingest.url}/${keys.get(token)}` };
}

async function waitLive(id, timeoutMs = 30_000) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const s = (await api(`/api/streams/${id}`)).body;
    // Live and playable: the API gives the playlist once a viewer's first request plays.
    if (s?.status === "live" && s.playback_url) return s;
    if (Date.now() > until) throw new Error(`stream ${id} not playable after ${timeoutMs} ms (${s?.status})`);
    await sleep(50);
  }
}

// What the origin serves: LL-HLS if a media playlist advertises parts.
async function servedProtocol(playbackUrl) {
  try {
    const master = await (await fetch(playbackUrl)).text();
    const variant = master.split("\n").find((l) => l && !l.startsWith("#"));
    if (!variant) return { protocol: "unknown", master: master.slice(0, 300) };
    const media = await (await fetch(new URL(variant.trim(), playbackUrl))).text();
    const ll = /#EXT-X-PART-INF|#EXT-X-PART:/.test(media);
    const target = +(media.match(/#EXT-X-TARGETDURATION:(\d+)/)?.[1] ?? NaN);
    const part = +(media.match(/PART-TARGET=([\d.]+)/)?.[1] ?? NaN);
    return { protocol: ll ? "llhls" : "hls", target_duration_s: target, part_target_s: Number.isFinite(part) ? part : null };
  } catch (e) {
    return { protocol: "unknown", error: String(e) };
  }
}

// ---------------------------------------------------------------- browser

async function viewerPage(id, errors, name) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  page.on("console", (m) => m.type() === "error" && !/status of 503/.test(m.text()) && errors.push(`${name}: ${m.text()}`));
  page.on("pageerror", (e) => errors.push(`${name}: ${e}`));
  await page.addInitScript({ content: probeScript() });
  const opened = Date.now();
  await page.goto(`${BASE}/#/watch/${id}`);
  return { page, opened };
}

async function firstFrame(page, timeoutMs) {
  await page.waitForFunction(() => window.__glass?.firstFrame != null, null, { timeout: timeoutMs, polling: 20 });
  return page.evaluate(() => window.__glass.firstFrame);
}

// The page's Date.now() minus this process's, from the round trip with the least uncertainty.
async function clockOffset(page) {
  let best = null;
  for (let i = 0; i < 5; i++) {
    const before = Date.now();
    const there = await page.evaluate(() => Date.now());
    const after = Date.now();
    const c = { offset: there - (before + after) / 2, uncertainty: (after - before) / 2 };
    if (!best || c.uncertainty < best.uncertainty) best = c;
  }
  return best;
}

// A screenshot of the <video> as composited, its strip decoded here (ffmpeg -> gray): now minus
// capture, with half the screenshot's duration as the uncertainty. Only the picture is shot: the
// element's box less any letterboxing (object-fit: contain).
async function screenshotLatency(page) {
  const box = await page.evaluate(() => {
    const v = document.querySelector("video");
    const r = v.getBoundingClientRect();
    const scale = Math.min(r.width / v.videoWidth, r.height / v.videoHeight);
    const width = v.videoWidth * scale, height = v.videoHeight * scale;
    return { x: r.x + (r.width - width) / 2, y: r.y + (r.height - height) / 2, width, height };
  });
  const before = Date.now();
  const png = await page.screenshot({ clip: box, type: "png", animations: "allow", caret: "initial", scale: "css" });
  const after = Date.now();
  const w = Math.round(box.width), h = Math.round(box.height);
  const raw = spawnSync("ffmpeg", ["-v", "error", "-i", "pipe:0", "-vf", `scale=${w}:${h}`, "-f", "rawvideo", "-pix_fmt", "gray", "-"], { input: png, maxBuffer: 1 << 26 }).stdout;
  const { decodeStrip, grayLuma } = await import("./strip.mjs");
  const d = raw.length === w * h ? decodeStrip(grayLuma(raw, w, h), w, h) : { ok: false, reason: "size" };
  return d.ok ? { ok: true, latency: (before + after) / 2 - d.ms, uncertainty: (after - before) / 2 } : { ok: false, reason: d.reason, box };
}

// ---------------------------------------------------------------- statistics

function quantile(sorted, q) {
  if (!sorted.length) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i];
}

function summary(values) {
  const s = [...values].sort((a, b) => a - b);
  const mean = s.reduce((a, b) => a + b, 0) / (s.length || 1);
  return { p50: quantile(s, 0.5), p90: quantile(s, 0.9), p99: quantile(s, 0.99), max: s.at(-1) ?? null, min: s[0] ?? null, mean: s.length ? Math.round(mean) : null };
}

// Time spent stalled in [t0, t1]: from each `waiting` to the next `playing`, clipped to the window.
function stalls(events, t0, t1) {
  let stalled = 0, since = null, count = 0;
  for (const [type, at] of events) {
    if (type === "waiting" && since == null) (since = at), at >= t0 && at <= t1 && count++;
    if (type === "playing" && since != null) {
      stalled += Math.max(0, Math.min(at, t1) - Math.max(since, t0));
      since = null;
    }
  }
  if (since != null) stalled += Math.max(0, t1 - Math.max(since, t0));
  return { stalled_ms: stalled, waiting_events: count };
}

// ---------------------------------------------------------------- one mode

async function runMode(mode) {
  const result = { mode, requested: MODES[mode] };
  const workdir = mkdtempSync(join(tmpdir(), "onair-glass-"));
  let platform;
  let edge;
  try {
    if (MODES[mode].edge) {
      edge = await startEdge(EDGE);
      log(`${mode}: nginx edge on ${EDGE.listen}`);
    }
    log(`${mode}: starting onair up (${BIN})`);
    platform = await startPlatform(mode, workdir);
    browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: CHROMIUM_ARGS });
    result.chromium = browser.version();
    const token = await register(`glass_${RUN}_${mode.replace(/\W/g, "_")}`.slice(0, 30));
    const errors = [];

    // 1. Steady state: a stream running, a viewer joining after join-after seconds, then warm-up
    //    and the measuring window on that same page.
    {
      const s = await startStream(token, `Glass ${RUN} ${mode}`);
      const total = opts.joinAfter + 30 + opts.warmup + opts.seconds + 15;
      const publisher = publish(s.ingest, total);
      const published = Date.now();
      try {
        const live = await waitLive(s.id);
        log(`${mode}: stream ${s.id} playable after ${Date.now() - published} ms; viewer joins at +${opts.joinAfter} s`);
        await sleep(Math.max(0, published + opts.joinAfter * 1000 - Date.now()));
        result.served = await servedProtocol(live.playback_url);
        const { page, opened } = await viewerPage(s.id, errors, "viewer");
        const ff = await firstFrame(page, 30_000);
        result.ttff_join_ms = Math.round(ff.perf); // navigation start -> first presented frame
        result.ttff_join_from_goto_ms = ff.wall - opened;
        log(`${mode}: joining viewer's first frame ${result.ttff_join_ms} ms after navigation start; warm-up ${opts.warmup} s, measuring ${opts.seconds} s`);
        if (opts.rendition !== "auto") {
          // Pin a rendition (as the quality menu does) for the warm-up and the window.
          const got = await page.evaluate((h) => {
            const hls = document.querySelector("video").__hls;
            const i = hls.levels.findIndex((l) => l.height === h);
            if (i >= 0) hls.currentLevel = i;
            return i;
          }, +opts.rendition);
          if (got < 0) throw new Error(`no ${opts.rendition}p rendition to pin`);
        }
        await sleep(opts.warmup * 1000);
        const t0 = Date.now();
        // Two checks, spread over the window, of what the probe measures: the page's clock against
        // this process's (the one ffmpeg's time(0) shares), and glass-to-glass read independently
        // of the page's canvas, from screenshots of the composited page decoded here.
        const checks = [];
        while (Date.now() < t0 + opts.seconds * 1000 - 1500) {
          checks.push({ clock: await clockOffset(page), shot: await screenshotLatency(page) });
          await sleep(Math.min(opts.seconds * 1000 / 6, t0 + opts.seconds * 1000 - Date.now()));
        }
        await sleep(Math.max(0, t0 + opts.seconds * 1000 - Date.now()));
        const t1 = Date.now();
        const g = await page.evaluate(() => ({ ...window.__glass }));
        // Which of the viewer's sources it played from (an edge, or the origin).
        result.source = await page.evaluate(() => window.__onairPlayer?.sources?.current?.name ?? null);
        if (publisher.exitCode != null) throw new Error(`the publisher stopped early (${publisher.exitCode}): ${publisher.err}`);
        const frames = g.frames.filter(([w]) => w >= t0 && w <= t1);
        const lat = frames.filter((f) => f[1] != null);
        const heights = {};
        for (const f of frames) heights[f[2]] = (heights[f[2]] ?? 0) + 1;
        const byHeight = {};
        for (const h of Object.keys(heights)) byHeight[h] = summary(lat.filter((f) => String(f[2]) === h).map((f) => f[1]));
        const rejected = {};
        for (const f of frames) if (f[4]) rejected[f[4]] = (rejected[f[4]] ?? 0) + 1;
        let maxGap = 0, freezes = 0, frozen = 0;
        const presented = [t0, ...frames.map((f) => f[0]), t1];
        for (let i = 1; i < presented.length; i++) {
          const gap = presented[i] - presented[i - 1];
          maxGap = Math.max(maxGap, gap);
          if (gap > 500) (freezes++, (frozen += gap));
        }
        const st = stalls(g.events, t0, t1);
        const quality = await page.evaluate(() => {
          const q = document.querySelector("video")?.getVideoPlaybackQuality?.();
          return q ? { total: q.totalVideoFrames, dropped: q.droppedVideoFrames } : null;
        });
        const player = g.player.filter(([w]) => w >= t0 && w <= t1);
        result.window = { t0, t1, seconds: (t1 - t0) / 1000, warmup_s: opts.warmup };
        result.glass_to_glass_ms = summary(lat.map((f) => f[1]));
        result.samples = lat.length;
        result.frames_presented = frames.length;
        result.presented_fps = +(frames.length / ((t1 - t0) / 1000)).toFixed(1);
        result.rejected = { count: frames.length - lat.length, reasons: rejected };
        result.rendition_heights = heights;
        result.glass_to_glass_by_height_ms = byHeight;
        result.rebuffer = {
          ratio: +(st.stalled_ms / (t1 - t0)).toFixed(4),
          ...st,
          freezes_over_500ms: freezes,
          frozen_ms: frozen,
          max_frame_gap_ms: maxGap,
        };
        result.video_quality = quality;
        result.player = {
          hls_latency_s: summary(player.filter((p) => p[1] != null).map((p) => +p[1].toFixed(2))),
          hls_target_latency_s: player.at(-1)?.[2] ?? null,
          playback_rate: summary(player.map((p) => p[3])),
          buffer_ahead_s: summary(player.map((p) => +p[4].toFixed(2))),
          levels: [...new Set(player.map((p) => p[6]))],
        };
        const offsets = checks.map((c) => c.clock).sort((a, b) => a.uncertainty - b.uncertainty);
        result.page_clock_offset_ms = offsets[0] ?? null;
        const shots = checks.map((c) => c.shot).filter((x) => x.ok);
        result.screenshot_check = {
          shots: checks.length,
          decoded: shots.length,
          glass_to_glass_ms: summary(shots.map((x) => x.latency)),
          uncertainty_ms: summary(shots.map((x) => x.uncertainty)).max,
        };
        result.video_elements = g.videos;
        result.events_in_window = g.events.filter(([, w]) => w >= t0 && w <= t1);
        await page.context().close();
      } finally {
        await api(`/api/streams/${s.id}/stop`, { token, body: {} });
        await stop(publisher, 5000);
      }
    }

    // 2. A viewer on the page before the publisher starts (a "going live" notification), N times,
    //    a new stream each: publisher start -> first presented frame.
    result.ttff_waiting_ms = [];
    result.ttff_waiting_failures = 0;
    for (let i = 0; i < opts.tries; i++) {
      await sleep(2000); // the previous stream's encoders wind down
      const s = await startStream(token, `Glass ${RUN} ${mode} wait ${i}`);
      const { page } = await viewerPage(s.id, errors, `waiting-${i}`);
      await sleep(1000); // the page is up and polling
      const publisher = publish(s.ingest, 40);
      const published = Date.now();
      try {
        const ff = await firstFrame(page, 30_000);
        result.ttff_waiting_ms.push(ff.wall - published);
        log(`${mode}: waiting viewer ${i + 1}/${opts.tries}: first frame ${ff.wall - published} ms after the publisher started`);
      } catch (e) {
        result.ttff_waiting_failures++;
        result.ttff_waiting_ms.push(null);
        log(`${mode}: waiting viewer ${i + 1}/${opts.tries}: no frame in 30 s (${e.message.split("\n")[0]})`);
      } finally {
        await page.context().close();
        await api(`/api/streams/${s.id}/stop`, { token, body: {} });
        await stop(publisher, 5000);
      }
    }
    result.page_errors = errors;
  } catch (e) {
    if (platform) e.message += `\n--- onair up output (tail) ---\n${platform.log().slice(-4000)}`;
    throw e;
  } finally {
    try { await browser?.close(); } catch {}
    browser = null;
    await stop(platform);
    await edge?.remove();
    rmSync(workdir, { recursive: true, force: true });
  }
  return result;
}

// ---------------------------------------------------------------- report

const s1 = (ms) => (ms == null ? "—" : (ms / 1000).toFixed(2) + " s");
function table(results) {
  const modes = results.map((r) => r.mode);
  const head = ["measure", ...results.map((r) => `${r.mode} (served: ${r.served?.protocol ?? "?"})`)];
  if (results.length === 2) head.push(`${modes[1]} / ${modes[0]}`);
  const rows = [];
  const add = (name, get, fmt = s1, ratio = true) => {
    const vals = results.map(get);
    const row = [name, ...vals.map((v) => fmt(v))];
    if (results.length === 2) row.push(ratio && vals[0] && vals[1] != null ? (vals[1] / vals[0]).toFixed(2) + "x" : "");
    rows.push(row);
  };
  add("glass-to-glass p50", (r) => r.glass_to_glass_ms?.p50);
  add("glass-to-glass p90", (r) => r.glass_to_glass_ms?.p90);
  add("glass-to-glass p99", (r) => r.glass_to_glass_ms?.p99);
  add("glass-to-glass max", (r) => r.glass_to_glass_ms?.max);
  add("samples (rejected)", (r) => r, (r) => `${r.samples} (${r.rejected?.count})`, false);
  add("rendition heights seen", (r) => r, (r) => Object.keys(r.rendition_heights ?? {}).map((h) => `${h}p`).join(", "), false);
  add("played from", (r) => r, (r) => r.source ?? "—", false);
  add("first frame, joining (nav -> frame)", (r) => r.ttff_join_ms);
  add("first frame, waiting (publish -> frame), median", (r) => median(r.ttff_waiting_ms));
  add("first frame, waiting, each try", (r) => r, (r) => (r.ttff_waiting_ms ?? []).map((v) => (v == null ? "none" : (v / 1000).toFixed(1))).join(" / "), false);
  add("rebuffer ratio (stalled / window)", (r) => r.rebuffer?.ratio, (v) => (v == null ? "—" : (100 * v).toFixed(2) + " %"), false);
  add("cross-check: screenshots decoded here, p50", (r) => r.screenshot_check?.glass_to_glass_ms?.p50);
  add("hls.js latency estimate p50", (r) => r.player?.hls_latency_s?.p50, (v) => (v == null ? "—" : v.toFixed(2) + " s"));
  const w = head.map((_, i) => Math.max(...[head, ...rows].map((r) => String(r[i]).length)));
  const line = (r) => "| " + r.map((c, i) => String(c).padEnd(w[i])).join(" | ") + " |";
  return [line(head), "|" + w.map((n, i) => (i ? "-".repeat(n + 1) + ":" : "-".repeat(n + 2))).join("|") + "|", ...rows.map(line)].join("\n");
}

function median(xs) {
  const v = (xs ?? []).filter((x) => x != null).sort((a, b) => a - b);
  return v.length ? v[Math.floor((v.length - 1) / 2)] : null;
}

function machine() {
  const v = (cmd, args) => { try { return execFileSync(cmd, args, { encoding: "utf8" }).split("\n")[0]; } catch { return null; } };
  return {
    cpus: cpus().length, cpu_model: cpus()[0]?.model, memory_gib: Math.round(totalmem() / 2 ** 30),
    loadavg_start: loadavg().map((x) => +x.toFixed(2)), node: process.version,
    ffmpeg: v("ffmpeg", ["-version"]), onair_bin: BIN,
  };
}

// ---------------------------------------------------------------- main

async function main() {
  if (opts.selftest) {
    const r = await selftest({ seconds: 10, log });
    console.log(JSON.stringify(r, null, 2));
    process.exit(r.ok ? 0 : 1);
  }
  if (!existsSync(BIN)) throw new Error(`no onair binary at ${BIN} (set ONAIR_BIN or build: cargo build --release -p onair-cli)`);
  if (!existsSync(join(ROOT, "web/dist/index.html"))) throw new Error("web/dist is missing: build the web app (cd web && npm run build)");
  const out = { date: new Date().toISOString(), machine: machine(), options: opts };
  if (opts.preflight) {
    log("self-test of the clock strip (publisher -> file -> ffmpeg decode)");
    const st = await selftest({ seconds: 4, log });
    out.selftest = { ok: st.ok, failures: st.failures, publisher_hold_ms: st.publisher_hold_ms };
    if (!st.ok) throw new Error(`strip self-test failed: ${st.failures.join("; ")}`);
  }
  execFileSync("psql", ["-d", "postgres", "-qc", `DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`]);
  out.results = [];
  for (const mode of opts.modes) out.results.push(await runMode(mode));
  out.machine.loadavg_end = loadavg().map((x) => +x.toFixed(2));
  const dir = join(import.meta.dirname, "results");
  mkdirSync(dir, { recursive: true });
  const file = opts.out ?? join(dir, `${out.date.replace(/[:.]/g, "-")}.json`);
  writeFileSync(file, JSON.stringify(out, null, 2) + "\n");
  if (!opts.out) writeFileSync(join(dir, "latest.json"), JSON.stringify(out, null, 2) + "\n"); // --out: a side run
  console.log(JSON.stringify(out.results.map(({ events_in_window, ...r }) => r), null, 2));
  for (const r of out.results)
    // A mode's protocol is its name before any `-` (`llhls-cdn` serves LL-HLS, through an edge).
    if (r.served?.protocol && r.served.protocol !== r.mode.split("-")[0])
      console.log(`\nnote: mode ${r.mode} was asked for (${JSON.stringify(r.requested.env)}) but the origin served ${r.served.protocol}: the ${r.mode} column measures ${r.served.protocol}`);
  console.log(`\n${table(out.results)}\n\nload average ${out.machine.loadavg_start.join(" ")} -> ${out.machine.loadavg_end.join(" ")}; written to ${file}`);
}

main()
  .catch(async (e) => {
    console.error(e);
    process.exitCode = 1;
  })
  .finally(cleanup);
