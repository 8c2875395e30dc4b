// hls.js tuned for a live low-latency feed: start at the playlist's hold-back (LL-HLS parts, or
// three segments of standard HLS), catch up by playing slightly faster rather than by seeking.
import Hls, { type Level } from "hls.js";

export interface PlayerState {
  levels: { index: number; height: number; bitrate: number }[];
  level: number; // -1 = auto
  playingLevel: number;
  latency: number | null; // seconds behind the live edge
  atEdge: boolean;
  error: string | null;
}

export function attach(video: HTMLVideoElement, url: string, onState: (s: PlayerState) => void): () => void {
  const state: PlayerState = { levels: [], level: -1, playingLevel: -1, latency: null, atEdge: true, error: null };
  const emit = () => onState({ ...state });
  if (!Hls.isSupported()) {
    // Safari plays HLS natively.
    video.src = url;
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
  });
  let manifestLoaded = false;
  let reloads = 0;
  let reloadTimer: ReturnType<typeof setTimeout> | undefined;
  hls.on(Hls.Events.MANIFEST_LOADED, () => {
    manifestLoaded = true;
    reloads = 0;
  });
  hls.loadSource(url);
  hls.attachMedia(video);
  hls.on(Hls.Events.MANIFEST_PARSED, (_e, data) => {
    state.levels = data.levels
      .map((l: Level, index: number) => ({ index, height: l.height, bitrate: l.bitrate }))
      .sort((a, b) => b.height - a.height);
    emit();
    video.play().catch(() => {
      // Autoplay with sound is blocked until a click; start muted instead.
      video.muted = true;
      video.play().catch(() => {});
    });
  });
  hls.on(Hls.Events.LEVEL_SWITCHED, (_e, data) => {
    state.playingLevel = data.level;
    emit();
  });
  hls.on(Hls.Events.ERROR, (_e, data) => {
    if (!data.fatal) return;
    if (data.type === Hls.ErrorTypes.NETWORK_ERROR && !manifestLoaded) {
      // The stream is live but its first playlist is not out yet (or the origin is briefly
      // unreachable): load the source again, with backoff. startLoad() cannot recover here:
      // there is no manifest to load levels from.
      state.error = "waiting for the stream to start…";
      clearTimeout(reloadTimer);
      reloadTimer = setTimeout(() => hls.loadSource(url), Math.min(500 * 2 ** reloads++, 4_000));
    } else if (data.type === Hls.ErrorTypes.NETWORK_ERROR) {
      state.error = "connection lost, retrying…";
      hls.startLoad();
    } else if (data.type === Hls.ErrorTypes.MEDIA_ERROR) {
      hls.recoverMediaError();
    } else {
      state.error = "this stream cannot be played";
    }
    emit();
  });
  hls.on(Hls.Events.FRAG_BUFFERED, () => {
    if (state.error) {
      state.error = null;
      emit();
    }
  });
  const timer = setInterval(() => {
    const edge = hls.liveSyncPosition;
    const latency = hls.latency;
    state.latency = Number.isFinite(latency) && latency > 0 ? latency : null;
    state.atEdge = edge == null || edge - video.currentTime < 6;
    emit();
  }, 1000);
  (video as any).__hls = hls;
  (window as any).__onairPlayer = { hls, setLevel: (i: number) => (hls.currentLevel = i) };
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
