// The web app in a real browser (Debian's Chromium through playwright-core) against the
// platform started exactly as `onair up` starts it. Run by scripts/test.sh (scripts/browser-test.sh).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { api, BASE, launchBrowser, publish, ROOT, startPlatform } from "./support/platform.mjs";

const ARTIFACTS = process.env.ONAIR_ARTIFACTS ?? join(ROOT, "e2e/artifacts");
const RUN = Math.random().toString(36).slice(2, 8);

let platform;
let browser;
const consoleErrors = [];

async function newPage(name) {
  const context = await browser.newContext({ viewport: { width: 1400, height: 850 } });
  const page = await context.newPage();
  page.on("console", (m) => m.type() === "error" && consoleErrors.push(`${name}: ${m.text()}`));
  page.on("pageerror", (e) => consoleErrors.push(`${name}: ${e}`));
  page.on("dialog", (d) => d.accept());
  return page;
}

async function registerAs(page, username) {
  await page.goto(`${BASE}/#/register`);
  await page.fill("input[name=username]", username);
  await page.fill("input[name=email]", `${username}@example.com`);
  await page.fill("input[name=password]", "correct horse battery");
  await page.click("button[type=submit]");
  await page.waitForURL(/#\/dashboard/);
}

before(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  // No demo stream: the tests publish their own, and its encoder would take a core of the two
  // this machine has from them (their viewers stall for want of CPU, not of anything tested).
  platform = await startPlatform({ db: "onair_browser", prefix: `browser${RUN}`, env: { ONAIR_DEMO: "false" } });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await platform?.stop();
});

const state = {};

test("a new streamer goes live from the dashboard and a viewer watches it play", { timeout: 120_000 }, async () => {
  const streamer = await newPage("streamer");
  await registerAs(streamer, `streamer_${RUN}`);
  // The session survives a reload: the refresh cookie signs the page back in.
  await streamer.reload();
  await streamer.waitForSelector(`header .who:has-text('streamer_${RUN}')`);
  assert.equal(await streamer.evaluate(() => document.cookie), "", "no token is readable by scripts");
  state.title = `Browser marathon ${RUN} speedrun`;
  await streamer.fill("input[name=title]", state.title);
  await streamer.selectOption("select[name=category]", "games");
  await streamer.fill("input[name=tags]", "speedrun, browser");
  await streamer.click("text=Start stream");
  await streamer.waitForSelector("[data-testid=stream-status]:has-text('STARTING')");
  await streamer.click("text=Reveal");
  const key = (await streamer.textContent("[data-testid=stream-key]")).trim();
  assert.match(key, /^live_/, "the key is shown once, right after it is made");
  const ingest = (await streamer.textContent("[data-testid=ingest-url]")).trim();
  state.publisher = publish(`${ingest}/${key}`, 150);
  state.publishedAt = Date.now();
  await streamer.waitForSelector("[data-testid=stream-status]:has-text('LIVE')", { timeout: 30_000 });
  const href = await streamer.getAttribute("a:has-text('Open watch page')", "href");
  state.streamId = href.split("/").pop();
  state.streamer = streamer;
  // The streamer's own preview plays on the dashboard; paused while the viewer is measured
  // (their two machines are one here: its 720p decoding would take CPU from the viewer's).
  const preview = "[data-testid=preview]";
  await streamer.waitForFunction((p) => document.querySelector(p)?.currentTime > 0, preview, { timeout: 30_000 });
  await streamer.evaluate((p) => document.querySelector(p).pause(), preview);

  const viewer = await newPage("viewer");
  const opened = Date.now();
  await viewer.goto(`${BASE}/#/watch/${state.streamId}`);
  await viewer.evaluate(() => {
    window.__videoErrors = [];
    const watch = () => {
      const v = document.querySelector("video");
      if (!v) return setTimeout(watch, 50);
      v.addEventListener("error", () => window.__videoErrors.push(v.error?.message ?? "error"));
      v.requestVideoFrameCallback?.(() => (window.__firstFrame = performance.now()));
    };
    watch();
  });
  await viewer.waitForFunction(() => document.querySelector("video")?.currentTime > 1, null, { timeout: 30_000 });
  // Playing means the clock moves at about real time. On a loaded 2-core CI machine (ffmpeg
  // publishing and transcoding the ladder beside Chromium) one sub-second catch-up stall right
  // after the first frame happens, so the window is 4 s and half of it must play.
  const t1 = await viewer.evaluate(() => document.querySelector("video").currentTime);
  await viewer.waitForTimeout(4000);
  const t2 = await viewer.evaluate(() => document.querySelector("video").currentTime);
  assert.ok(t2 > t1 + 2, `currentTime advances (${t1} -> ${t2} in 4 s)`);
  assert.deepEqual(await viewer.evaluate(() => window.__videoErrors), []);
  // `onair up` serves LL-HLS: the player loads parts, may block on reloads, and sits at the
  // playlist's part hold-back rather than three segments behind.
  await viewer.waitForTimeout(3000);
  const ll = await viewer.evaluate(() => {
    const h = window.__onairPlayer.hls;
    const d = h.levels[h.currentLevel]?.details;
    return { parts: d?.partList?.length ?? 0, canBlockReload: !!d?.canBlockReload, latency: h.latency };
  });
  assert.ok(ll.parts > 0 && ll.canBlockReload, `LL-HLS playlists: ${JSON.stringify(ll)}`);
  assert.ok(ll.latency < 2.5, `the player holds back by parts, not segments: ${JSON.stringify(ll)}`);
  state.llLatency = +ll.latency.toFixed(2);
  const options = await viewer.$$eval("[data-testid=quality] option", (os) => os.map((o) => o.textContent.trim()));
  assert.deepEqual(options.slice(1), ["720p", "480p", "360p"], `every ladder entry: ${options}`);
  assert.match(options[0], /^Auto/);
  // From navigation start to the first decoded frame painted (requestVideoFrameCallback), and
  // to one second of playback, as the viewer's clock sees them.
  state.firstFrameMs = Math.round(await viewer.evaluate(() => window.__firstFrame ?? NaN));
  state.oneSecondMs = Date.now() - opened;
  state.viewer = viewer;
  // The preview plays on once resumed.
  const paused = await streamer.evaluate((p) => (document.querySelector(p).play(), document.querySelector(p).currentTime), preview);
  await streamer.waitForFunction(([p, t]) => document.querySelector(p).currentTime > t + 1, [preview, paused], { timeout: 15_000 });
  await viewer.screenshot({ path: join(ARTIFACTS, "watch.png") });
  await streamer.screenshot({ path: join(ARTIFACTS, "dashboard.png") });
});

test("chat goes both ways, a moderator's delete reaches everyone, a timeout shows inline", { timeout: 90_000 }, async () => {
  const { streamer, streamId } = state;
  const fan = await newPage("fan");
  await registerAs(fan, `fan_${RUN}`);
  await fan.goto(`${BASE}/#/watch/${streamId}`);
  await streamer.goto(`${BASE}/#/watch/${streamId}`);
  for (const p of [fan, streamer]) await p.waitForSelector("[data-testid=chat-status]:has-text('connected')");

  await fan.fill("input[aria-label='Send a message']", `hello from the fan ${RUN}`);
  await fan.press("input[aria-label='Send a message']", "Enter");
  const fanMsg = streamer.locator(`[data-testid=chat-messages] li:has-text('hello from the fan ${RUN}')`);
  await fanMsg.waitFor({ timeout: 10_000 });
  await streamer.fill("input[aria-label='Send a message']", `welcome fan ${RUN}`);
  await streamer.press("input[aria-label='Send a message']", "Enter");
  await fan.locator(`[data-testid=chat-messages] li:has-text('welcome fan ${RUN}')`).waitFor({ timeout: 10_000 });
  assert.equal(await fan.locator(`li:has-text('welcome fan ${RUN}') .role.owner`).count(), 1, "the owner's badge");

  // The streamer moderates from the message's hover tools.
  await fanMsg.hover();
  await fanMsg.locator("button[aria-label='Delete message']").click();
  await fan.locator(`[data-testid=chat-messages] li:has-text('hello from the fan ${RUN}')`).waitFor({ state: "detached", timeout: 10_000 });

  await fan.fill("input[aria-label='Send a message']", `second try ${RUN}`);
  await fan.press("input[aria-label='Send a message']", "Enter");
  const second = streamer.locator(`[data-testid=chat-messages] li:has-text('second try ${RUN}')`);
  await second.waitFor({ timeout: 10_000 });
  await second.hover();
  await second.locator(`button[aria-label^='Time out']`).click();
  await fan.waitForTimeout(500);
  await fan.fill("input[aria-label='Send a message']", "can I still talk?");
  await fan.press("input[aria-label='Send a message']", "Enter");
  const error = await fan.locator("[data-testid=chat-error]").textContent({ timeout: 10_000 });
  assert.match(error, /timed out/i, `the refusal is shown inline: ${error}`);
});

test("a viewer rewinds 30 s while live, returns to live, and clips the last 30 s", { timeout: 120_000 }, async () => {
  const { streamId } = state;
  const errors = [];
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const viewer = await context.newPage();
  viewer.on("pageerror", (e) => errors.push(`${e}`));
  await registerAs(viewer, `rewinder_${RUN}`);
  // The window must reach 30 s back: the broadcast has to be that old.
  const wait = state.publishedAt + 38_000 - Date.now();
  if (wait > 0) await viewer.waitForTimeout(wait);
  await viewer.goto(`${BASE}/#/watch/${streamId}`);
  // hls.js knows the playing date once the fragment under the playhead is matched (not at the
  // first frame, and not for a moment after a quality switch): wait for it rather than read null.
  const liveBehind = await (
    await viewer.waitForFunction(() => {
      const at = document.querySelector("video")?.currentTime > 0.5 && window.__onairPlayer?.hls.playingDate;
      return at && (Date.now() - at.getTime()) / 1000;
    }, null, { timeout: 25_000 })
  ).jsonValue();
  await viewer.click("[data-testid=rewind]");
  // The page goes 30 s further back than the live player was, and says so.
  const label = await viewer.locator("[data-testid=latency]").textContent();
  const back = Number(label.match(/(\d+) s back/)?.[1]);
  assert.ok(Math.abs(back - (liveBehind + 30)) < 2, `"${label}" after ${liveBehind} s behind live`);
  // Playing the recorded window that far behind the streamer's clock (dates from the segments).
  await viewer.waitForFunction(
    (back) => {
      const p = window.__onairPlayer;
      const at = p?.mode === "dvr" && p.hls.playingDate;
      return at && document.querySelector("video").currentTime > 0 && Math.abs(Date.now() - at.getTime() - back * 1000) < 3_000;
    },
    back,
    { timeout: 25_000 },
  );
  const t1 = await viewer.evaluate(() => document.querySelector("video").currentTime);
  await viewer.waitForTimeout(2000);
  const t2 = await viewer.evaluate(() => document.querySelector("video").currentTime);
  assert.ok(t2 > t1 + 1, `the rewound video plays (${t1} -> ${t2})`);
  const behind = await (
    await viewer.waitForFunction(() => {
      const at = window.__onairPlayer.hls.playingDate;
      return at && (Date.now() - at.getTime()) / 1000;
    }, null, { timeout: 5_000 })
  ).jsonValue();
  assert.ok(Math.abs(behind - back) < 3, `${behind} s behind the streamer's clock, ${back} s asked`);
  state.rewoundBehindS = +behind.toFixed(1);
  await viewer.screenshot({ path: join(ARTIFACTS, "rewind.png") });
  // Back to live: the low-latency player again, about a second behind.
  await viewer.click("[data-testid=go-live]");
  await viewer.waitForFunction(() => window.__onairPlayer?.mode === "live" && window.__onairPlayer.hls.latency > 0 && window.__onairPlayer.hls.latency < 3, null, { timeout: 20_000 });

  // A clip of the last 30 s, with a page that plays it.
  await viewer.click("[data-testid=clip]");
  const link = viewer.locator("[data-testid=clip-link]");
  await link.waitFor({ timeout: 25_000 });
  await link.click();
  await viewer.waitForFunction(() => document.querySelector("[data-testid=clip-video]")?.currentTime > 0.5, null, { timeout: 25_000 });
  const clipDuration = await viewer.evaluate(() => document.querySelector("[data-testid=clip-video]").duration);
  const clipId = viewer.url().split("/").pop();
  const clip = (await api(`/api/clips/${clipId}`)).body;
  // The last 30 s of media, or all there is: with this stream, its ladder and the browser on
  // two cores the encoders run below real time, so a minute on the wall clock can hold
  // less media than that (the exact cut is checked in transcoder-image/tests/media.rs).
  assert.ok(clip.renditions.length >= 1 && clip.duration_secs >= 10 && clip.duration_secs <= 33, JSON.stringify(clip));
  assert.ok(Math.abs(clip.duration_secs - clipDuration) < 1, `the page plays the whole clip: ${clipDuration} s of ${JSON.stringify(clip)}`);
  assert.deepEqual(errors, []);
  await context.close();
});

test("search finds the stream, live now shows it with viewers, and it leaves after stop", { timeout: 90_000 }, async () => {
  const { streamId, streamer } = state;
  const visitor = await newPage("visitor");
  await visitor.goto(`${BASE}/`);
  await visitor.fill("input[aria-label='Search streams']", `marathon`);
  await visitor.press("input[aria-label='Search streams']", "Enter");
  await visitor.locator(`[data-stream='${streamId}']`).waitFor({ timeout: 10_000 });
  await visitor.goto(`${BASE}/`);
  const card = visitor.locator(`[data-testid=live-now] [data-stream='${streamId}']`);
  await card.waitFor({ timeout: 10_000 });
  // The viewer's page beats every 10 s; the count reaches the card within a refresh.
  await visitor.waitForFunction(
    (id) => /([1-9]\d*) watching/.test(document.querySelector(`[data-stream='${id}'] .viewers`)?.textContent ?? ""),
    streamId,
    { timeout: 30_000 },
  );
  await visitor.screenshot({ path: join(ARTIFACTS, "home.png") });

  await streamer.goto(`${BASE}/#/dashboard`);
  await streamer.click("text=End stream");
  await streamer.waitForSelector("[data-testid=stream-status]:has-text('OFFLINE')", { timeout: 15_000 });
  await card.waitFor({ state: "detached", timeout: 20_000 });
  state.publisher.kill("SIGINT");
});

test("the ended broadcast plays as a VOD with a seek bar, and stops playing once its streamer deletes it", { timeout: 120_000 }, async () => {
  const { streamer } = state;
  // Recorded while live; a VOD once the worker has stored its last segments.
  await streamer.goto(`${BASE}/#/dashboard`);
  const link = streamer.locator("[data-testid=vod-link]").first();
  await link.waitFor({ timeout: 60_000 });
  const vodId = (await link.getAttribute("href")).split("/").pop();
  const vod = (await api(`/api/vods/${vodId}`)).body;
  assert.equal(vod.stream_id, state.streamId);
  assert.ok(vod.duration_secs > 5, `a VOD of ${vod.duration_secs} s`);

  const errors = [];
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const viewer = await context.newPage();
  viewer.on("pageerror", (e) => errors.push(`${e}`));
  await viewer.goto(`${BASE}/#/vod/${vodId}`);
  await viewer.waitForFunction(() => document.querySelector("[data-testid=vod-video]")?.currentTime > 0.5, null, { timeout: 25_000 });
  // The whole broadcast is there: the player's duration is the VOD's, and a seek lands and plays.
  const duration = await viewer.evaluate(() => document.querySelector("[data-testid=vod-video]").duration);
  assert.ok(Math.abs(duration - vod.duration_secs) < 2, `player duration ${duration} vs ${vod.duration_secs}`);
  const target = Math.floor(duration / 2);
  await viewer.evaluate((t) => (document.querySelector("[data-testid=vod-video]").currentTime = t), target);
  await viewer.waitForFunction((t) => document.querySelector("[data-testid=vod-video]").currentTime > t + 0.5, target, { timeout: 15_000 });
  const qualities = await viewer.locator("[data-testid=quality] option").count();
  assert.ok(qualities >= 2, `the renditions to choose from (${qualities - 1})`);
  await viewer.screenshot({ path: join(ARTIFACTS, "vod.png") });

  // The streamer deletes it from the dashboard while the viewer watches.
  // (Its confirm() is accepted by newPage's dialog handler.)
  await streamer.locator("text=Delete recording").first().click();
  await streamer.locator(`[data-testid=vod-link][href='#/vod/${vodId}']`).waitFor({ state: "detached", timeout: 10_000 });
  assert.equal((await api(`/api/vods/${vodId}`)).status, 404);
  // The viewer's next load is refused; the page says why. (Segments are immutable, so the
  // browser's cache would answer for what it fetched already: a viewer further into a long VOD
  // has not. A switch of rendition flushes the buffer, so the player loads again.)
  const cdp = await context.newCDPSession(viewer);
  await cdp.send("Network.clearBrowserCache");
  await viewer.evaluate(() => {
    const hls = window.__onairPlayer.hls;
    hls.currentLevel = hls.levels.findIndex((_, i) => i !== hls.loadLevel);
    const v = document.querySelector("[data-testid=vod-video]");
    v.currentTime = Math.max(0, v.duration - 1);
  });
  await viewer.waitForSelector("[data-testid=vod-gone]", { timeout: 20_000 });
  assert.deepEqual(errors, []);
  await context.close();

  // Keeping less of the next broadcasts: the choice is saved with the account.
  const [saved] = await Promise.all([
    streamer.waitForResponse((r) => r.url().endsWith("/api/users/me") && r.request().method() === "PATCH"),
    streamer.selectOption("[data-testid=record-renditions]", "top_and_lowest"),
  ]);
  assert.equal((await saved.json()).record_renditions, "top_and_lowest");
  await streamer.reload();
  await streamer.waitForFunction(() => document.querySelector("[data-testid=record-renditions]")?.value === "top_and_lowest", null, { timeout: 10_000 });
});

test("a streamer makes the channel's links signed from the dashboard and a viewer plays through them", { timeout: 120_000 }, async () => {
  const streamer = await newPage("signing-streamer");
  await registerAs(streamer, `signing_${RUN}`);
  // The choice is saved with the account (and applies from the next broadcast).
  const [saved] = await Promise.all([
    streamer.waitForResponse((r) => r.url().endsWith("/api/users/me") && r.request().method() === "PATCH"),
    streamer.selectOption("[data-testid=playback-access]", "signed"),
  ]);
  assert.equal((await saved.json()).playback_access, "signed");
  await streamer.reload();
  await streamer.waitForFunction(() => document.querySelector("[data-testid=playback-access]")?.value === "signed", null, { timeout: 10_000 });
  await streamer.fill("input[name=title]", `Signed ${RUN}`);
  await streamer.selectOption("select[name=category]", "games");
  await streamer.click("text=Start stream");
  await streamer.click("text=Reveal");
  const key = (await streamer.textContent("[data-testid=stream-key]")).trim();
  const ingest = (await streamer.textContent("[data-testid=ingest-url]")).trim();
  const publisher = publish(`${ingest}/${key}`, 60);
  try {
    await streamer.waitForSelector("[data-testid=stream-status]:has-text('LIVE')", { timeout: 30_000 });
    const id = (await streamer.getAttribute("a:has-text('Open watch page')", "href")).split("/").pop();
    // `onair up` made its own signing key: the viewer plays from a signed link, the plain one
    // is refused.
    const errors = [];
    const viewer = await watchPage("signed-viewer", id, errors);
    await viewer.waitForFunction(() => document.querySelector("video")?.currentTime > 1, null, { timeout: 30_000 });
    const url = await viewer.evaluate(() => window.__onairPlayer.sources.url);
    assert.match(url, /\/hls\/[0-9a-f-]{36}\/t\/local\.\d+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}\//, url);
    const plain = await fetch((await api(`/api/streams/${id}`)).body.playback_url);
    assert.equal(plain.status, 403);
    assert.deepEqual(errors, []);
    await viewer.context().close();

    await streamer.click("text=End stream");
    await streamer.waitForSelector("[data-testid=stream-status]:has-text('OFFLINE')", { timeout: 15_000 });
  } finally {
    publisher.kill("SIGINT");
  }

  // The broadcast's VOD keeps the channel's rule: a signed link, made out to the viewer. One
  // that is refused mid-playback (it expired: links last the token lifetime plus the VOD's
  // length) is renewed by the page, which plays on from where it was.
  const link = streamer.locator("[data-testid=vod-link]").first();
  await link.waitFor({ timeout: 60_000 });
  const vodId = (await link.getAttribute("href")).split("/").pop();
  const errors = [];
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const viewer = await context.newPage();
  viewer.on("pageerror", (e) => errors.push(`${e}`));
  await viewer.goto(`${BASE}/#/vod/${vodId}`);
  const video = "[data-testid=vod-video]";
  await viewer.waitForFunction((v) => document.querySelector(v)?.currentTime > 0.5, video, { timeout: 25_000 });
  const first = await viewer.evaluate(() => window.__onairPlayer.hls.url);
  const token = first.match(/\/vod\/[^/]+\/t\/([^/]+)\//)?.[1];
  assert.ok(token, `a signed VOD link: ${first}`);
  // From now on the origin refuses this link, as it does an expired one.
  await viewer.route(`**/t/${token}/**`, (route) =>
    route.fulfill({
      status: 403,
      contentType: "application/json",
      body: JSON.stringify({ error: { code: "invalid_playback_token", message: "this playback link is not valid (or expired)" } }),
    }),
  );
  const [asked, target] = await Promise.all([
    viewer.waitForResponse((r) => r.url().endsWith(`/api/vods/${vodId}`), { timeout: 20_000 }),
    // Another rendition (which flushes the buffer) from the middle, with the browser's cache
    // cleared: the player must load.
    (async () => {
      await (await context.newCDPSession(viewer)).send("Network.clearBrowserCache");
      return viewer.evaluate((v) => {
        const hls = window.__onairPlayer.hls;
        hls.currentLevel = hls.levels.findIndex((_, i) => i !== hls.loadLevel);
        const el = document.querySelector(v);
        el.currentTime = Math.max(2, el.duration / 2);
        return el.currentTime;
      }, video);
    })(),
  ]);
  assert.equal(asked.status(), 200);
  // The new player's first frame is where the old one was, not the start.
  await viewer.waitForFunction(([v, old]) => window.__onairPlayer.hls.url !== old && document.querySelector(v).readyState >= 2, [video, first], { timeout: 20_000 });
  const renewed = await viewer.evaluate(() => window.__onairPlayer.hls.url);
  assert.match(renewed, /\/vod\/[^/]+\/t\/[^/]+\/master\.m3u8$/, "a fresh signed link");
  const at = await viewer.evaluate((v) => document.querySelector(v).currentTime, video);
  assert.ok(at >= target - 1, `the renewed player went on from ${target.toFixed(1)} s, not from the start (at ${at.toFixed(1)} s)`);
  await viewer.waitForFunction(([v, t]) => document.querySelector(v).currentTime > t + 0.5, [video, at], { timeout: 10_000 });
  assert.deepEqual(errors, []);
  await context.close();
});

// A page whose first painted video frame is timed on the wall clock (shared with this process).
async function watchPage(name, id, errors) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  page.on("console", (m) => m.type() === "error" && errors.push(`${name}: ${m.text()}`));
  page.on("pageerror", (e) => errors.push(`${name}: ${e}`));
  await page.goto(`${BASE}/#/watch/${id}`);
  return page;
}

/** When the page's video first advanced (polled every 20 ms from here, so a page Chromium
 * paints late cannot hide its first frame), once it has played half a second. */
async function playing(page) {
  await page.waitForFunction(() => document.querySelector("video")?.currentTime > 0, null, { timeout: 25_000, polling: 20 });
  const at = Date.now();
  await page.waitForFunction(() => document.querySelector("video")?.currentTime > 0.5, null, { timeout: 25_000 });
  return at;
}

test("viewers at a stream's first second get video: one waiting on the page, one opening it as it goes live", { timeout: 180_000 }, async () => {
  const name = `early_${RUN}`;
  const reg = await api("/api/users/register", {
    body: { username: name, email: `${name}@example.com`, password: "correct horse battery" },
  });
  assert.equal(reg.status, 201, JSON.stringify(reg.body));
  const token = reg.body.access_token;
  state.waitingFirstFrameMs = [];
  state.joiningFirstFrameMs = [];
  let key = null; // shown by the first start only
  for (let i = 0; i < 3; i++) {
    const start = await api("/api/streams/start", { token, body: { title: `First second ${RUN} ${i}`, category: "games" } });
    assert.equal(start.status, 201, JSON.stringify(start.body));
    const id = start.body.stream.id;
    key ??= start.body.ingest.stream_key;
    const errors = [];
    // Sent by a "going live" notification: on the page before the publisher connects.
    const waiting = await watchPage(`waiting-${i}`, id, errors);
    // Before the publisher connects the page says what is coming, not "offline".
    const note = await waiting.waitForSelector("[data-testid=player-note]");
    assert.match(await note.textContent(), /Waiting for the streamer/);
    const publisher = publish(`${start.body.ingest.url}/${key}`, 60);
    const published = Date.now();
    try {
      // Sent by "went live": opens the page the moment the API says live.
      while ((await api(`/api/streams/${id}`)).body.status !== "live") await new Promise((r) => setTimeout(r, 50));
      const opened = Date.now();
      const joiner = await watchPage(`joining-${i}`, id, errors);
      const [w, j] = await Promise.all([playing(waiting), playing(joiner)]);
      assert.ok(Number.isFinite(w) && Number.isFinite(j), `try ${i}: first frame at ${w} / ${j}; ${errors}`);
      state.waitingFirstFrameMs.push(w - published);
      state.joiningFirstFrameMs.push(j - opened);
      // The API hands out the playlist only once it plays: not even a retryable "not yet".
      assert.deepEqual(errors, [], `try ${i}`);
      await joiner.context().close();
    } finally {
      await waiting.context().close();
      await api(`/api/streams/${id}/stop`, { token, body: {} });
      publisher.kill("SIGINT");
    }
  }
  console.log("first frame at stream start (ms)", {
    waiting_from_publish: state.waitingFirstFrameMs,
    joining_from_open: state.joiningFirstFrameMs,
  });
});

test("the phone layout works and no page logged an error", async () => {
  // A live stream on the home page (there is no demo stream here).
  const name = `phone_${RUN}`;
  const reg = await api("/api/users/register", { body: { username: name, email: `${name}@example.com`, password: "correct horse battery" } });
  const started = await api("/api/streams/start", { token: reg.body.access_token, body: { title: `Phone ${RUN}`, category: "games" } });
  assert.equal(started.status, 201, JSON.stringify(started.body));
  const publisher = publish(`${started.body.ingest.url}/${started.body.ingest.stream_key}`, 60);
  try {
    const phone = await newPage("phone");
    await phone.setViewportSize({ width: 390, height: 844 });
    await phone.goto(`${BASE}/`);
    await phone.waitForSelector("[data-testid=live-now]");
    const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `nothing wider than the phone (${overflow}px over)`);
    await phone.screenshot({ path: join(ARTIFACTS, "home-phone.png") });
  } finally {
    publisher.kill("SIGINT");
  }
  assert.deepEqual(consoleErrors, []);
});

test("page weight and time to first frame are recorded", () => {
  const dir = join(ROOT, "web/dist/assets");
  const js = readdirSync(dir).filter((f) => f.endsWith(".js"));
  const gz = js.reduce((n, f) => n + gzipSync(readFileSync(join(dir, f)), { level: 9 }).length, 0);
  const metrics = {
    watch_js_gzip_kb: +(gz / 1024).toFixed(1),
    first_frame_ms: state.firstFrameMs,
    one_second_played_ms: state.oneSecondMs,
    // hls.js's own estimate of how far behind the live edge it plays (LL-HLS).
    player_latency_s: state.llLatency,
    // At stream start: from the publisher's connect for a viewer already on the page, and from
    // opening the page for one arriving as the stream goes live (three tries each).
    waiting_viewer_first_frame_ms: state.waitingFirstFrameMs,
    joining_viewer_first_frame_ms: state.joiningFirstFrameMs,
  };
  writeFileSync(join(ARTIFACTS, "metrics.json"), JSON.stringify(metrics, null, 2));
  console.log("web metrics", metrics);
  assert.ok(gz < 300 * 1024, `the watch page's JavaScript is under 300 KB gzipped (${metrics.watch_js_gzip_kb} KB)`);
});
