// hls.js tuned for a live low-latency feed: start near the live edge, keep ~3 segments behind,
// catch up by playing slightly faster rather than by seeking.
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
  const hls = new Hls({
    lowLatencyMode: true,
    liveSyncDurationCount: 3,
    liveMaxLatencyDurationCount: 6,
    maxLiveSyncPlaybackRate: 1.15,
    backBufferLength: 30,
    manifestLoadingMaxRetry: 6,
    levelLoadingMaxRetry: 6,
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
    if (data.type === Hls.ErrorTypes.NETWORK_ERROR) {
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
