// Delivery that survives a CDN outage, in a real browser: two nginx edges from the config the
// repo ships play two CDNs in front of `onair up`'s origin. A viewer of a channel that requires
// signed links plays through the first edge; that edge stops mid-playback and the video goes on
// through the second; the second stops too and it goes on from the origin, whose direct-viewer
// capacity refuses a flood with 503 + Retry-After while the viewer keeps playing.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { api, BASE, launchBrowser, publish, startPlatform } from "./support/platform.mjs";
import { startEdge } from "./support/edge.mjs";

const RUN = Math.random().toString(36).slice(2, 8);
const ORIGIN = "127.0.0.1:8090";
const EDGE_SECRET = `edge-secret-${RUN}`;
// 32 random bytes, base64url: the apiserver signs with it, the origin and the edges verify.
const KEYS = `k${RUN}:${Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64url")}`;
const EDGES = [
  { name: "edge-a", listen: "127.0.0.1:8181" },
  { name: "edge-b", listen: "127.0.0.1:8182" },
];

let platform;
let browser;
let edges = [];
const errors = [];
const state = {};

before(async () => {
  edges = await Promise.all(
    EDGES.map((e) => startEdge({ ...e, origin: ORIGIN, edgeSecret: EDGE_SECRET, playbackKeys: KEYS })),
  );
  platform = await startPlatform({
    db: "onair_cdn",
    prefix: `cdn${RUN}`,
    env: {
      ONAIR_PLAYBACK_BASES: EDGES.map((e) => `${e.name}=http://${e.listen}/hls`).join(","),
      ONAIR_PLAYBACK_KEYS: KEYS,
      ONAIR_EDGE_SECRET: EDGE_SECRET,
      // One LL-HLS viewer makes ~10 requests/s (a blocking reload and a part per part, its
      // level's init); a flood of a few hundred is well past this.
      ONAIR_ORIGIN_REQUESTS_PER_SEC: "40",
      ONAIR_ORIGIN_STREAM_REQUESTS_PER_SEC: "30",
      // Links live a minute (the least the API takes); players renew them 30 s in (their
      // earliest renewal): the viewer and the streamer's preview play on past their first
      // links, through the outages.
      ONAIR_PLAYBACK_TOKEN_TTL: "60",
      // One viewer's report is enough here (a real deployment counts distinct sessions).
      ONAIR_DELIVERY_BREAKER_FAILURES: "1",
      // No demo stream: its encoder would take a core of the two this machine has from the
      // stream under test, whose viewer then stalls for want of CPU, not of a CDN.
      ONAIR_DEMO: "false",
    },
  });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  state.publisher?.kill("SIGINT");
  await platform?.stop();
  for (const e of edges) await e.remove();
});

// Samples the video's clock every 100 ms in the page: a freeze is a span in which it did not
// move while the video was meant to play.
async function watchFreezes(page) {
  await page.evaluate(() => {
    const v = document.querySelector("video");
    const w = (window.__freezes = { spans: [], since: null, last: v.currentTime, at: performance.now(), events: [] });
    // A timeline for the log: what the player did around each freeze (a failing run says why).
    const p = window.__onairPlayer;
    const note = (what) => w.events.length < 200 && w.events.push([Math.round(performance.now()), what]);
    p.hls.on("hlsLevelSwitching", (_e, d) => note(`level ${d.level}`));
    p.hls.on("hlsError", (_e, d) => note(`error ${d.details}${d.fatal ? " (fatal)" : ""}`));
    for (const e of ["waiting", "seeking", "pause", "emptied"]) v.addEventListener(e, () => note(`video ${e} at ${v.currentTime.toFixed(2)}`));
    document.addEventListener("visibilitychange", () => note(`page ${document.visibilityState}`));
    const move = p.sources.onMove;
    p.sources.onMove = (from, to, reason) => (note(`moved ${from.name} -> ${to.name} (${reason})`), move?.(from, to, reason));
    setInterval(() => {
      const now = performance.now();
      if (v.currentTime !== w.last || v.paused) {
        if (w.since != null && now - w.since > 250) {
          w.spans.push(Math.round(now - w.since));
          w.lastEnd = now;
          note(`froze ${Math.round(now - w.since)} ms from ${Math.round(w.since)}, buffered ${(v.buffered.length ? v.buffered.end(v.buffered.length - 1) - v.currentTime : 0).toFixed(2)} s`);
        }
        w.since = null;
        w.last = v.currentTime;
      } else if (w.since == null) {
        w.since = now - 100;
      }
    }, 100);
  });
}

async function freezesSince(page, mark) {
  return page.evaluate((m) => {
    const w = window.__freezes;
    const open = w.since != null ? [Math.round(performance.now() - w.since)] : [];
    return [...w.spans.slice(m), ...open].filter((ms) => ms > 250);
  }, mark);
}

// Waits for 3 s of playback without a freeze; the count of freezes so far (a mark for
// freezesSince).
async function steady(page) {
  const from = await page.evaluate(() => performance.now());
  await page
    .waitForFunction(() => {
      const w = window.__freezes;
      return w.since == null && performance.now() - Math.max(w.lastEnd ?? 0, w.at) > 3000;
    }, null, { timeout: 30_000 })
    .catch(async () => assert.fail(`no steady playback: ${await timeline(page, from)}`));
  return page.evaluate(() => window.__freezes.spans.length);
}

// The player's timeline since `from` (page ms), in ms relative to it.
async function timeline(page, from) {
  return page.evaluate((f) => window.__freezes.events.filter(([t]) => t >= f - 3000).map(([t, e]) => `${Math.round(t - f)} ms: ${e}`), from);
}

async function advances(page, ms) {
  const t1 = await page.evaluate(() => document.querySelector("video").currentTime);
  await page.waitForTimeout(ms);
  const t2 = await page.evaluate(() => document.querySelector("video").currentTime);
  return t2 - t1;
}

async function metric(url, name, labels) {
  const text = await (await fetch(url)).text();
  // Registries prefix their names (`onair_apiserver_…`, `onair_media_…`).
  const line = text.split("\n").find((l) => !l.startsWith("#") && l.split(/[{ ]/)[0].endsWith(name) && Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`)));
  return line ? Number(line.split(" ").pop()) : 0;
}

test("a viewer of a signed channel plays through the first CDN and keeps playing through the second when it stops", { timeout: 180_000 }, async () => {
  const name = `cdn_${RUN}`;
  const reg = await api("/api/users/register", { body: { username: name, email: `${name}@example.com`, password: "correct horse battery" } });
  assert.equal(reg.status, 201, JSON.stringify(reg.body));
  const token = reg.body.access_token;
  const set = await api("/api/users/me", { token, method: "PATCH", body: { playback_access: "signed" } });
  assert.equal(set.body.playback_access, "signed", JSON.stringify(set.body));
  const start = await api("/api/streams/start", { token, body: { title: `CDN outage ${RUN}`, category: "games" } });
  assert.equal(start.status, 201, JSON.stringify(start.body));
  const id = start.body.stream.id;
  state.id = id;
  state.publisher = publish(`${start.body.ingest.url}/${start.body.ingest.stream_key}`, 240, { size: "640x360" });
  while ((await api(`/api/streams/${id}`)).body.playback_url == null) await new Promise((r) => setTimeout(r, 200));

  // The plain URL the stream's state shows does not play for a signed channel.
  const plain = await fetch((await api(`/api/streams/${id}`)).body.playback_url);
  assert.equal(plain.status, 403);
  assert.equal((await plain.json()).error.code, "playback_token_required");

  const context = await browser.newContext();
  const page = await context.newPage();
  page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(`${BASE}/#/watch/${id}`);
  await page.waitForFunction(() => document.querySelector("video")?.currentTime > 1, null, { timeout: 30_000 });
  const sources = await page.evaluate(() => window.__onairPlayer.sources.current && {
    current: window.__onairPlayer.sources.current.name,
    position: window.__onairPlayer.sources.position,
  });
  assert.equal(sources.position, 0, "the player starts on the first source of its list");
  state.firstLink = await page.evaluate(() => window.__onairPlayer.sources.url);
  // The streamer watches the broadcast in the dashboard's preview, from a signed link too.
  const dashboard = await (await browser.newContext()).newPage();
  dashboard.on("pageerror", (e) => errors.push(String(e)));
  await dashboard.goto(`${BASE}/#/login`);
  await dashboard.fill("input[name=username]", name);
  await dashboard.fill("input[name=password]", "correct horse battery");
  await dashboard.click("button[type=submit]");
  await dashboard.waitForURL(/#\/dashboard/);
  await dashboard.waitForFunction(() => document.querySelector("video.preview")?.currentTime > 1, null, { timeout: 30_000 });
  state.dashboard = dashboard;
  state.previewLink = await dashboard.evaluate(() => window.__onairPlayer.sources.url);
  assert.match(state.previewLink, /\/t\/[^/]+\/master\.m3u8$/, "the preview plays a signed link");
  // Paused through the outages (it keeps loading and renewing): its decoding would take CPU the
  // viewer under test needs on two cores.
  await dashboard.evaluate(() => document.querySelector("video.preview").pause());
  const listed = await api(`/api/streams/${id}/playback`, { body: { session_id: await page.evaluate(() => sessionStorage.getItem("onair.session")) } });
  assert.deepEqual(listed.body.sources.map((s) => s.name).sort(), ["edge-a", "edge-b", "origin"]);
  assert.equal(listed.body.sources.at(-1).name, "origin", "the origin is last");
  assert.equal(listed.body.sources[0].name, sources.current, "the session's order is the same on every ask");
  for (const s of listed.body.sources) assert.match(s.url, /\/hls\/[0-9a-f-]{36}\/t\/[^/]+\/master\.m3u8$/, "every link is signed");
  const first = edges.find((e) => e.name === sources.current);
  const second = edges.find((e) => e !== first);
  state.second = second;

  // One cached copy for every viewer: a part this viewer loaded comes from the edge's cache
  // for another viewer, through that viewer's own link. And no token reaches the edge's log.
  const part = first.log().split("\n").map((l) => l.match(/"GET [^/? ]+\/([^? ]+\.m4s)\?/)?.[1]).filter(Boolean).at(-1);
  assert.ok(part, `the viewer loaded parts through ${first.name}`);
  const other = await api(`/api/streams/${id}/playback`, { body: { session_id: `other-viewer-${RUN}` } });
  const otherBase = other.body.sources.find((s) => s.name === first.name).url.replace(/master\.m3u8$/, "");
  const again = await fetch(otherBase + part);
  assert.equal(again.status, 200, `${otherBase} ${part}`);
  assert.equal(again.headers.get("x-cache"), "HIT", "another viewer's link is served from the same cached copy");
  // Nor from a link cut short after its token (with or without the slash).
  const bare = listed.body.sources.find((s) => s.name === first.name).url.replace(/\/master\.m3u8$/, "");
  for (const u of [bare, `${bare}/`]) await fetch(u);
  await new Promise((r) => setTimeout(r, 200));
  assert.doesNotMatch(first.log(), /\/t\/(?!-)|[A-Za-z0-9_-]{43}/, "the edge's log holds no token");
  const forged = listed.body.sources[0].url.replace(/\.([A-Za-z0-9_-]{43})\//, (_, sig) => `.${sig.slice(0, 42)}${sig[42] === "A" ? "B" : "A"}/`);
  const refused = await fetch(forged);
  assert.equal(refused.status, 403, "a forged link is refused at the edge");
  assert.equal(refused.headers.get("x-edge"), first.name);

  // Steady playback before the outage (the streamer's dashboard, just opened, can hold both
  // cores for a moment), so what follows is the outage's doing.
  await watchFreezes(page);
  const mark = await steady(page);
  const stoppedAt = await page.evaluate(() => performance.now());
  await first.stop();
  const played = await advances(page, 10_000);
  const now = await page.evaluate(() => window.__onairPlayer.sources.current.name);
  const freezes = await freezesSince(page, mark);
  state.firstOutageFreezes = freezes;
  console.log("first CDN stopped", { from: first.name, to: now, played_s: played, freezes_ms: freezes, timeline: await timeline(page, stoppedAt) });
  assert.equal(now, second.name, "the player moved to the second CDN");
  assert.ok(played > 7, `the video went on (${played.toFixed(2)} s of 10 s)`);
  assert.ok(freezes.length <= 1, `at most one stall: ${freezes}`);
  assert.ok(freezes.every((ms) => ms < 3000), `no stall of 3 s or more: ${freezes}`);

  // The heartbeat reports the move; one report opens the breaker here, so a new viewer is not
  // sent to the stopped edge.
  await page.waitForTimeout(11_000);
  assert.ok((await metric(`${BASE}/metrics`, "delivery_failovers_reported_total", { base: first.name, reason: "network" })) >= 1);
  assert.ok((await metric(`${BASE}/metrics`, "delivery_breaker_trips_total", { base: first.name })) >= 1);
  const fresh = await api(`/api/streams/${id}/playback`, { body: { session_id: `new-viewer-${RUN}` } });
  assert.deepEqual(fresh.body.sources.map((s) => s.name), [second.name, "origin"], "the failing CDN left new viewers' lists");
  state.page = page;
});

test("a CDN answering 503 itself is left for the next source, while the origin's own 503s are waited out", { timeout: 120_000 }, async () => {
  const { id, second } = state;
  assert.ok(second, "the first test left the second CDN up");
  // The origin marks its answers, and the edge passes the mark through, readable across origins.
  const listed = (await api(`/api/streams/${id}/playback`, { body: { session_id: `probe-${RUN}` } })).body.sources;
  for (const s of listed) {
    const res = await fetch(s.url);
    assert.equal(res.headers.get("x-onair-from"), "origin", `${s.name} passes the origin's mark`);
    assert.match(res.headers.get("access-control-expose-headers") ?? "", /x-onair-from/i, s.name);
  }

  // A viewer whose first source is the second CDN; the test decides what that CDN answers.
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
  page.on("pageerror", (e) => errors.push(String(e)));
  let answer = "pass";
  await page.route(`${second.url}/**`, (route) => {
    if (answer === "pass") return route.continue();
    // What the origin sends for a stream starting (marked), or what a CDN sends when its
    // backend is down (no mark).
    const origin = answer === "origin-503";
    return route.fulfill({
      status: 503,
      contentType: "application/json",
      headers: {
        "access-control-allow-origin": "*",
        "access-control-expose-headers": "X-Onair-From",
        "cache-control": "no-store",
        "retry-after": "1",
        ...(origin ? { "x-onair-from": "origin" } : {}),
      },
      body: JSON.stringify({ error: { code: origin ? "stream_starting" : "backend_unavailable", message: "retry" } }),
    });
  });
  await page.goto(`${BASE}/#/watch/${id}`);
  await page.waitForFunction(() => document.querySelector("video")?.currentTime > 1, null, { timeout: 30_000 });
  const current = () => page.evaluate(() => window.__onairPlayer.sources.current.name);
  assert.equal(await current(), second.name, "the stopped CDN left the list: the second is first");

  // hls.js backs off between retries (up to 4 s for parts): the marked spell is short enough
  // that the player is not left waiting out a long backoff when the CDN's own 503s begin.
  answer = "origin-503";
  await page.waitForTimeout(2500);
  assert.equal(await current(), second.name, "the origin's 503 is waited out on the same source");
  answer = "cdn-503";
  const t0 = Date.now();
  await page.waitForFunction(() => window.__onairPlayer.sources.current.name === "origin", null, { timeout: 15_000 });
  const movedIn = (Date.now() - t0) / 1000;
  const played = await advances(page, 5000);
  console.log("a CDN's own 503", { moved_in_s: movedIn, played_s: played });
  assert.ok(played > 3.5, `the video goes on from the next source (${played.toFixed(2)} s of 5 s)`);
  await context.close();
});

test("with both CDNs stopped the video goes on from the origin, which refuses a flood of direct requests and keeps its viewer", { timeout: 120_000 }, async () => {
  const { page, second } = state;
  assert.ok(page, "the first test left a viewer playing");
  // The previous test's second viewer shared the two cores with this one: any stall that began
  // then ends before this test's window opens, so only this test's stalls are counted.
  const mark = await steady(page);
  const stoppedAt = await page.evaluate(() => performance.now());
  await second.stop();
  const played = await advances(page, 10_000);
  const now = await page.evaluate(() => window.__onairPlayer.sources.current.name);
  const freezes = await freezesSince(page, mark);
  console.log("second CDN stopped", { to: now, played_s: played, freezes_ms: freezes, timeline: await timeline(page, stoppedAt) });
  assert.equal(now, "origin");
  assert.ok(played > 7, `the video went on from the origin (${played.toFixed(2)} s of 10 s)`);
  assert.ok(freezes.every((ms) => ms < 3000), `no stall of 3 s or more: ${freezes}`);

  // Rewinding restarts the player on the source it had moved to, not on the stopped CDNs it
  // left (each would be a failed request and a failover report more).
  const edgeHosts = edges.map((e) => e.url);
  const asked = [];
  const onRequest = (r) => edgeHosts.some((h) => r.url().startsWith(h)) && asked.push(r.url());
  page.on("request", onRequest);
  await page.click("[data-testid=rewind]");
  await page.waitForFunction(() => window.__onairPlayer.mode === "dvr" && document.querySelector("video").currentTime > 0, null, { timeout: 25_000 });
  page.off("request", onRequest);
  assert.equal(await page.evaluate(() => window.__onairPlayer.sources.current.name), "origin");
  assert.deepEqual(asked, [], "the rewind player asked the stopped CDNs nothing");
  await page.click("[data-testid=go-live]");
  await page.waitForFunction(() => window.__onairPlayer.mode === "live" && window.__onairPlayer.sources.current.name === "origin", null, { timeout: 10_000 });

  // A flood of direct requests (a CDN outage's worth of players at once) past the capacity:
  // refused with 503, a Retry-After, and nothing a cache would keep.
  const url = (await api(`/api/streams/${state.id}/playback`, { body: { session_id: `flood-${RUN}` } })).body.sources.at(-1).url;
  const answers = await Promise.all(Array.from({ length: 300 }, () => fetch(url).then(async (r) => ({ status: r.status, retry: r.headers.get("retry-after"), cache: r.headers.get("cache-control"), body: await r.text() }))));
  const busy = answers.filter((a) => a.status === 503);
  assert.ok(busy.length > 100, `most of the flood is refused (${busy.length} of 300)`);
  assert.ok(answers.some((a) => a.status === 200), "what fits is served");
  for (const a of busy) {
    assert.equal(JSON.parse(a.body).error.code, "origin_busy");
    assert.equal(a.retry, "2");
    assert.equal(a.cache, "no-store");
  }
  assert.ok((await metric("http://127.0.0.1:8090/metrics", "origin_capacity_refused_total", { scope: "total", kind: "requests" })) > 0
    || (await metric("http://127.0.0.1:8090/metrics", "origin_capacity_refused_total", { scope: "stream", kind: "requests" })) > 0);
  // The viewer already there plays on once the flood has passed.
  await page.waitForTimeout(2000);
  const after = await advances(page, 6000);
  assert.ok(after > 4, `the viewer plays on after the flood (${after.toFixed(2)} s of 6 s)`);

  // Over a minute in, the first links have expired: the viewer and the streamer's preview play
  // on, from links renewed while they played.
  const { dashboard, firstLink, previewLink } = state;
  const expires = Number(firstLink.match(/\/t\/[^.]+\.(\d+)\./)[1]) * 1000;
  if (Date.now() < expires + 1000) await page.waitForTimeout(expires + 1000 - Date.now());
  const expired = await fetch(firstLink.replace(/^http:\/\/[^/]+/, "http://127.0.0.1:8090"));
  assert.equal(expired.status, 403, "the viewer's first link has expired");
  assert.equal((await expired.json()).error.code, "invalid_playback_token");
  // Renewed: links with a later expiry, whichever source they are on now.
  const expiry = (url) => Number(url.match(/\/t\/[^.]+\.(\d+)\./)[1]);
  const viewerNow = await page.evaluate(() => window.__onairPlayer.sources.url);
  assert.ok(expiry(viewerNow) > expiry(firstLink), `the viewer's link was renewed: ${viewerNow}`);
  const previewNow = await dashboard.evaluate(() => window.__onairPlayer.sources.url);
  assert.ok(expiry(previewNow) > expiry(previewLink), `the preview's link was renewed: ${previewNow}`);
  assert.ok((await advances(page, 3000)) > 2, "the viewer plays on past its first link");
  await dashboard.evaluate(() => document.querySelector("video.preview").play());
  assert.ok((await advances(dashboard, 3000)) > 2, "the preview plays on past its first link");
  assert.deepEqual(errors.filter((e) => !/503|Failed to load resource/.test(e)), [], "no page errors");
});
