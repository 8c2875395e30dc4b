// The edge bench: how much of an audience's load reaches the origin with two caching edges in
// front of it, against the same audience on the origin directly. Starts `onair up` (its own
// database), two nginx edges from examples/edge, a 720p publisher, a channel with signed links,
// then runs `edge-load` with N players each way in one run and prints the table bench/README.md
// keeps. Usage (after `cargo build -p onair-cli -p onair-edge-bench`):
//   node bench/edge/run.mjs [--players 1000] [--secs 30]
import { execFileSync, spawn } from "node:child_process";
import { join } from "node:path";
import { api, publish, ROOT, startPlatform } from "../../web/tests/support/platform.mjs";
import { startEdge } from "../../web/tests/support/edge.mjs";

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const PLAYERS = Number(arg("players", 1000));
const SECS = Number(arg("secs", 30));
const TARGET = process.env.CARGO_TARGET_DIR ?? join(ROOT, "target");
const LOAD = join(TARGET, "debug/edge-load");
const RUN = Math.random().toString(36).slice(2, 8);
const SECRET = `edge-${RUN}`;
const KEYS = `b${RUN}:${Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64url")}`;
const EDGES = [
  { name: "edge-a", listen: "127.0.0.1:8181" },
  { name: "edge-b", listen: "127.0.0.1:8182" },
];

const edges = await Promise.all(EDGES.map((e) => startEdge({ ...e, origin: "127.0.0.1:8090", edgeSecret: SECRET, playbackKeys: KEYS })));
const platform = await startPlatform({
  db: "onair_edge_bench",
  prefix: `edgebench${RUN}`,
  env: {
    ONAIR_PLAYBACK_BASES: EDGES.map((e) => `${e.name}=http://${e.listen}/hls`).join(","),
    ONAIR_PLAYBACK_KEYS: KEYS,
    ONAIR_EDGE_SECRET: SECRET,
    // Every player asks for its sources from this one address.
    ONAIR_HEARTBEATS_PER_IP_PER_MINUTE: "1000000",
  },
}).catch(async (e) => {
  for (const edge of edges) await edge.remove();
  throw e;
});
let publisher;
try {
  const name = `bench_${RUN}`;
  const reg = await api("/api/users/register", { body: { username: name, email: `${name}@example.com`, password: "correct horse battery" } });
  const token = reg.body.access_token;
  await api("/api/users/me", { token, method: "PATCH", body: { playback_access: "signed" } });
  const start = await api("/api/streams/start", { token, body: { title: `Edge bench ${RUN}`, category: "games" } });
  const id = start.body.stream.id;
  publisher = publish(`${start.body.ingest.url}/${start.body.ingest.stream_key}`, 3600);
  while ((await api(`/api/streams/${id}`)).body.playback_url == null) await new Promise((r) => setTimeout(r, 200));
  await new Promise((r) => setTimeout(r, 5000));
  const rows = [];
  for (const via of ["origin", "edges"]) {
    const out = execFileSync(LOAD, ["--stream", id, "--players", String(PLAYERS), "--secs", String(SECS), "--via", via], { encoding: "utf8", maxBuffer: 1 << 20 });
    const row = JSON.parse(out.trim().split("\n").pop());
    rows.push(row);
    console.error(`[edge bench] ${via}:`, JSON.stringify(row));
  }
  const [direct, viaEdges] = rows;
  const hits = edges.map((e) => {
    const lines = e.log().trim().split("\n");
    const hit = lines.filter((l) => / HIT | UPDATING /.test(l)).length;
    return `${e.name} ${(100 * hit / lines.length).toFixed(1)}% of ${lines.length}`;
  });
  const f = (x, d = 1) => x.toFixed(d);
  console.log(`| ${PLAYERS} LL-HLS players, ${SECS} s | players' requests/s | origin requests/s | origin Mbit/s | parts/player/s | player errors/s |`);
  console.log("|---|---|---|---|---|---|");
  for (const r of rows) {
    console.log(`| ${r.via === "origin" ? "origin directly" : `through 2 edges (${Object.entries(r.first_sources).map(([k, v]) => `${k} ${v}`).join(", ")})`} | ${f(r.player_requests_per_sec)} | ${f(r.origin_requests_per_sec)} | ${f(r.origin_mbit_per_sec)} | ${f(r.parts_per_player_per_sec, 2)} | ${f(r.player_errors_per_sec, 2)} |`);
  }
  console.log(`\norigin requests/s through the edges vs directly: ${f(viaEdges.origin_requests_per_sec / direct.origin_requests_per_sec, 4)}× (edge hit ratio ${f(100 * viaEdges.hit_ratio)}%; nginx logs: ${hits.join(", ")})`);
} finally {
  publisher?.kill("SIGINT");
  await platform.stop();
  for (const e of edges) await e.remove();
}
