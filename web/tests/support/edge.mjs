// An nginx edge (a stand-in CDN) in front of the origin, from the config the repo ships
// (examples/edge/nginx.conf, Debian's nginx-light + libnginx-mod-http-js).
import { spawn } from "node:child_process";
import { chmodSync, copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "./platform.mjs";

const NGINX = process.env.ONAIR_NGINX ?? "/usr/sbin/nginx";

export async function startEdge({ name, listen, origin, edgeSecret, playbackKeys }) {
  const prefix = mkdtempSync(join(tmpdir(), `onair-edge-${name}-`));
  // nginx's workers run as `nobody` when started as root: they must reach the cache.
  chmodSync(prefix, 0o755);
  const values = { PREFIX: prefix, LISTEN: listen, ORIGIN: origin, EDGE_SECRET: edgeSecret, NAME: name };
  const conf = readFileSync(join(ROOT, "examples/edge/nginx.conf"), "utf8").replace(/\{\{(\w+)\}\}/g, (_, k) => {
    if (!(k in values)) throw new Error(`nginx.conf names {{${k}}}, which the tests do not fill`);
    return values[k];
  });
  writeFileSync(join(prefix, "nginx.conf"), conf);
  copyFileSync(join(ROOT, "examples/edge/playback_token.js"), join(prefix, "playback_token.js"));
  const proc = spawn(NGINX, ["-c", join(prefix, "nginx.conf"), "-e", join(prefix, "error.log")], {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, ONAIR_PLAYBACK_KEYS: playbackKeys ?? "" },
  });
  let err = "";
  proc.stderr.on("data", (d) => (err += d));
  const url = `http://${listen}`;
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (proc.exitCode != null) throw new Error(`nginx (${name}) exited: ${err}${readFileSync(join(prefix, "error.log"), "utf8")}`);
    try {
      if ((await fetch(`${url}/healthz`)).ok) break;
    } catch {}
    if (Date.now() > deadline) throw new Error(`nginx (${name}) did not answer on ${listen}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    name,
    url,
    prefix,
    // nginx's fast shutdown (SIGTERM): the master closes its listeners and its workers exit at
    // once, open connections with them — a CDN going away.
    async stop() {
      if (proc.exitCode != null) return;
      proc.kill("SIGTERM");
      await new Promise((r) => (proc.exitCode != null ? r() : proc.on("exit", r)));
    },
    // The access log: one line per request, with the cache's HIT/MISS.
    log() {
      return readFileSync(join(prefix, "access.log"), "utf8");
    },
    async remove() {
      await this.stop();
      rmSync(prefix, { recursive: true, force: true });
    },
  };
}
