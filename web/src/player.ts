// hls.js tuned for a live low-latency feed: start at the playlist's hold-back (LL-HLS parts, or
// three segments of standard HLS), catch up by playing slightly faster rather than by seeking.
import Hls, { type ErrorData, type Level } from "hls.js";
import type { Failover } from "./failover";

export interface PlayerState {
  levels: Levels;
  level: number; // -1 = auto
  playingLevel: number;
  latency: number | null; // seconds behind the live edge
  atEdge: boolean;
  error: string | null;
}

// `sources`: where to play from, in order (`failover.ts`); hls.js moves down the list when a
// source fails.
export function attach(video: HTMLVideoElement, sources: Failover, onState: (s: PlayerState) => void): () => void {
  const state: PlayerState = { levels: [], level: -1, playingLevel: -1, latency: null, atEdge: true, error: null };
  const emit = () => onState({ ...state });
  if (!Hls.isSupported()) {
    // Safari plays HLS natively (from the first source: AVPlayer does not take our loader).
    video.src = sources.url;
    return () => video.removeAttribute("src");
  }
  // Playlists: the origin holds a request for a stream that is seconds from its first segment
  // (up to 6 s), then answers 503 + Retry-After; both are waited through, never given up on.
  const playlistPolicy = {
    default: {
      maxTimeToFirstByteMs: 10_000,
      maxLoadTimeMs: 20_000,
      timeoutRetry: { maxNumRetry: 4, retryDelayMs: 0, maxRetryDelayMs: 0 },
      errorRetry: { maxNumRetry: 8, retryDelayMs: 500, maxRetryDelayMs: 2_000 },
    },
  };
  const hls = new Hls({
    // LL-HLS playlists say how far behind the edge to play (PART-HOLD-BACK); any liveSync* value
    // set here would override it (hls.js prefers a user's setting), so none is.
    lowLatencyMode: true,
    maxLiveSyncPlaybackRate: 1.15,
    backBufferLength: 30,
    manifestLoadPolicy: playlistPolicy,
    playlistLoadPolicy: playlistPolicy,
    // A part or segment that has not started arriving in 4 s is not coming from this source:
    // the failover loader moves to the next one (a stopped CDN refuses at once; a hung one
    // takes this long).
    fragLoadPolicy: {
      default: {
        maxTimeToFirstByteMs: 4_000,
        maxLoadTimeMs: 20_000,
        timeoutRetry: { maxNumRetry: 4, retryDelayMs: 0, maxRetryDelayMs: 0 },
        errorRetry: { maxNumRetry: 6, retryDelayMs: 500, maxRetryDelayMs: 4_000 },
      },
    },
    loader: sources.loader(),
  });
  let manifestLoaded = false;
  let reloads = 0;
  let reloadTimer: ReturnType<typeof setTimeout> | undefined;
  hls.on(Hls.Events.MANIFEST_LOADED, () => {
    manifestLoaded = true;
    reloads = 0;
  });
  hls.loadSource(sources.url);
  hls.attachMedia(video);
  track(hls, state, emit, "this stream cannot be played", {
    before: (data) => {
      if (!data.fatal || data.type !== Hls.ErrorTypes.NETWORK_ERROR || manifestLoaded) return false;
      // The stream is live but its first playlist is not out yet (or the origin is briefly
      // unreachable): load the source again, with backoff. startLoad() cannot recover here:
      // there is no manifest to load levels from.
      state.error = "waiting for the stream to start…";
      clearTimeout(reloadTimer);
      reloadTimer = setTimeout(() => hls.loadSource(sources.url), Math.min(500 * 2 ** reloads++, 4_000));
      emit();
      return true;
    },
  });
  hls.on(Hls.Events.MANIFEST_PARSED, () => {
    video.play().catch(() => {
      // Autoplay with sound is blocked until a click; start muted instead.
      video.muted = true;
      video.play().catch(() => {});
    });
  });
  const timer = setInterval(() => {
    const edge = hls.liveSyncPosition;
    const latency = hls.latency;
    state.latency = Number.isFinite(latency) && latency > 0 ? latency : null;
    state.atEdge = edge == null || edge - video.currentTime < 6;
    emit();
  }, 1000);
  expose(video, hls, "live", sources);
  return () => {
    clearInterval(timer);
    clearTimeout(reloadTimer);
    hls.destroy();
  };
}

export function setLevel(video: HTMLVideoElement, level: number) {
  const hls: Hls | undefined = (video as any).__hls;
  if (hls) hls.currentLevel = level;
}

export function goLive(video: HTMLVideoElement) {
  const hls: Hls | undefined = (video as any).__hls;
  const edge = hls?.liveSyncPosition;
  if (edge != null) video.currentTime = edge;
  video.play().catch(() => {});
}

type Levels = { index: number; height: number; bitrate: number }[];

// What every player reports the same way: its qualities (best first), the one playing, and fatal
// errors recovered where hls.js can (network: load again; media: recover), otherwise `failure`.
// `before` sees every error first and says whether it handled it; an error clears once media
// flows again, unless `stands` says it stands.
function track(
  hls: Hls,
  state: { levels: Levels; playingLevel: number; error: string | null },
  emit: () => void,
  failure: string,
  opts: { before?: (data: ErrorData) => boolean; stands?: () => boolean } = {},
) {
  hls.on(Hls.Events.MANIFEST_PARSED, (_e, data) => {
    state.levels = data.levels
      .map((l: Level, index: number) => ({ index, height: l.height, bitrate: l.bitrate }))
      .sort((a, b) => b.height - a.height);
    emit();
  });
  hls.on(Hls.Events.LEVEL_SWITCHED, (_e, data) => {
    state.playingLevel = data.level;
    emit();
  });
  hls.on(Hls.Events.ERROR, (_e, data) => {
    if (opts.before?.(data) || !data.fatal) return;
    if (data.type === Hls.ErrorTypes.NETWORK_ERROR) {
      state.error = "connection lost, retrying…";
      hls.startLoad();
    } else if (data.type === Hls.ErrorTypes.MEDIA_ERROR) {
      hls.recoverMediaError();
    } else {
      state.error = failure;
    }
    emit();
  });
  hls.on(Hls.Events.FRAG_BUFFERED, () => {
    if (state.error && !opts.stands?.()) {
      state.error = null;
      emit();
    }
  });
}

// For setLevel/goLive/behindNow, and for the browser tests (which read the player's state).
function expose(video: HTMLVideoElement, hls: Hls, mode: "live" | "vod" | "dvr", sources?: Failover) {
  (video as any).__hls = hls;
  (window as any).__onairPlayer = { hls, mode, sources, setLevel: (i: number) => (hls.currentLevel = i) };
}

// Starts playback once there is something to play (a call before the first buffered fragment
// can be lost), muted when the browser refuses sound without a click.
function autoplay(hls: Hls, video: HTMLVideoElement) {
  let started = false;
  video.addEventListener("playing", () => (started = true), { once: true });
  const go = () => {
    if (started || !video.paused) return;
    video.play().catch(() => {
      video.muted = true;
      video.play().catch(() => {});
    });
  };
  hls.on(Hls.Events.MANIFEST_PARSED, go);
  hls.on(Hls.Events.FRAG_BUFFERED, go);
}

export interface VodState {
  levels: Levels;
  playingLevel: number;
  error: string | null;
  // A playlist or segment answered 404: the VOD was deleted (or expired) while it played.
  gone: boolean;
  // One answered 403: the link expired (signed links last a while, made out to who asked) or
  // the channel's rule changed. A fresh link from the API may play.
  refused: boolean;
}

// hls.js for a finished broadcast: a VOD playlist, the whole of it seekable, no live edge.
// `startAt`: where to start (seconds), for a player restarted on a fresh link.
export function attachVod(video: HTMLVideoElement, url: string, onState: (s: VodState) => void, startAt?: number): () => void {
  const state: VodState = { levels: [], playingLevel: -1, error: null, gone: false, refused: false };
  const emit = () => onState({ ...state });
  if (!Hls.isSupported()) {
    video.src = url;
    if (startAt) video.addEventListener("loadedmetadata", () => (video.currentTime = startAt), { once: true });
    return () => video.removeAttribute("src");
  }
  const hls = new Hls({ lowLatencyMode: false, backBufferLength: 60, startPosition: startAt ?? -1 });
  autoplay(hls, video);
  hls.loadSource(url);
  hls.attachMedia(video);
  track(hls, state, emit, "this broadcast cannot be played", {
    before: (data) => {
      const code = data.response?.code;
      if (code !== 404 && code !== 403) return false;
      if (code === 404) {
        state.gone = true;
        state.error = "this broadcast is no longer available";
      } else {
        state.refused = true;
        state.error = "renewing this link…";
      }
      hls.stopLoad();
      emit();
      return true;
    },
    stands: () => state.gone || state.refused,
  });
  expose(video, hls, "vod");
  return () => hls.destroy();
}

// hls.js on the rewind window (a live playlist of the recorded segments, up to 30 min): starts
// `backSecs` behind the wall clock, found by the segments' PROGRAM-DATE-TIME, and stays there
// (no catching up: the viewer chose to be behind).
export function attachDvr(video: HTMLVideoElement, sources: Failover, backSecs: number, onState: (s: VodState) => void): () => void {
  const state: VodState = { levels: [], playingLevel: -1, error: null, gone: false, refused: false };
  const emit = () => onState({ ...state });
  const hls = new Hls({ lowLatencyMode: false, maxLiveSyncPlaybackRate: 1, backBufferLength: 60, loader: sources.loader() });
  let placed = false;
  autoplay(hls, video);
  hls.loadSource(sources.url);
  hls.attachMedia(video);
  track(hls, state, emit, "the rewind cannot be played");
  // Placed once the first fragment is buffered: only then are the fragments' start times on
  // the media's own timeline (before, a live playlist's are estimates from 0).
  hls.on(Hls.Events.FRAG_BUFFERED, (_e, data) => {
    if (placed) return;
    placed = true;
    const frags = hls.levels[data.frag.level]?.details?.fragments ?? [];
    const target = Date.now() - backSecs * 1000;
    const frag = [...frags].reverse().find((f) => f.programDateTime != null && f.programDateTime <= target) ?? frags[0];
    if (!frag) return;
    video.currentTime = frag.start + Math.max(0, (target - (frag.programDateTime ?? target)) / 1000);
  });
  expose(video, hls, "dvr", sources);
  return () => hls.destroy();
}

// Rewinding plays the window through Media Source Extensions (hls.js): not offered without.
export function canRewind(): boolean {
  return Hls.isSupported();
}

// How far behind the wall clock the video on screen is (seconds), when the player knows.
export function behindNow(video: HTMLVideoElement): number | null {
  const hls: Hls | undefined = (video as any).__hls;
  const at = hls?.playingDate;
  return at ? (Date.now() - at.getTime()) / 1000 : null;
}
