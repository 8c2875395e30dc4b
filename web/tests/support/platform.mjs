// What every browser test file starts from: the platform as `onair up` starts it (its own
// database, default ports), an OBS stand-in, Debian's Chromium, and the API over fetch.
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { chromium } from "playwright-core";

export const ROOT = resolve(import.meta.dirname, "../../..");
export const BIN = process.env.ONAIR_BIN ?? join(process.env.CARGO_TARGET_DIR ?? join(ROOT, "target"), "debug/onair");
export const BASE = "http://127.0.0.1:8080";

// `size`: a smaller picture where the test is about delivery, not the ladder (two cores encode
// the test pattern, transcode it and decode it in the browser; at 720p they fall behind now and
// then, and the video stalls for want of CPU, not of a CDN).
export function publish(url, secs = 90, { size = "1280x720" } = {}) {
  // OBS stand-in: a 30 fps test pattern with a tone, H.264 + AAC over RTMP.
  return spawn("ffmpeg", [
    "-hide_banner", "-loglevel", "error", "-re",
    "-f", "lavfi", "-i", `testsrc2=size=${size}:rate=30`,
    "-f", "lavfi", "-i", "sine=frequency=660:sample_rate=48000",
    "-t", String(secs), "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "30",
    "-c:a", "aac", "-f", "flv", url,
  ], { stdio: "ignore" });
}

// `onair up` from a fresh directory on a fresh database, with `env` added; resolves once it
// has printed its addresses (and started its demo stream).
export async function startPlatform({ db, prefix, env = {} }) {
  execFileSync("psql", ["-d", "postgres", "-qc", `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`]);
  const workdir = mkdtempSync(join(tmpdir(), "onair-browser-"));
  const proc = spawn(
    BIN,
    ["up", "--database-url", `postgres://localhost/${db}`, "--redis-prefix", `${prefix}:`, "--nats-prefix", prefix],
    { cwd: workdir, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, RUST_LOG: "warn", ...env } },
  );
  let out = "";
  // Its last line: the demo stream's address, or the playback one when there is no demo.
  const ready = env.ONAIR_DEMO === "false" ? "  playback " : "  demo ";
  await new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`onair up did not start:\n${out}`)), 60_000);
    proc.stdout.on("data", (d) => {
      out += d;
      if (out.includes(ready)) (clearTimeout(timer), ok());
    });
    proc.stderr.on("data", (d) => (out += d));
    proc.on("exit", (c) => fail(new Error(`onair up exited (${c}):\n${out}`)));
  });
  return {
    proc,
    workdir,
    async stop() {
      proc.kill("SIGINT");
      await new Promise((r) => (proc.exitCode != null ? r() : proc.on("exit", r)));
      // Keys, media segments and thumbnails of this run.
      rmSync(workdir, { recursive: true, force: true });
    },
  };
}

export function launchBrowser() {
  return chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required"],
  });
}

// A JSON API call: GET, or POST when there is a body (or `method` says otherwise).
export async function api(path, { token, body, method } = {}) {
  const res = await fetch(`${BASE}${path}`, {
    method: method ?? (body ? "POST" : "GET"),
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}
