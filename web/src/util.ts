export function uptime(since: string | null, now = Date.now()): string {
  if (!since) return "";
  const s = Math.max(0, Math.floor((now - Date.parse(since)) / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h > 0 ? `${h}h ${String(m).padStart(2, "0")}m` : `${m}m ${String(s % 60).padStart(2, "0")}s`;
}

export function compact(n: number): string {
  if (n >= 1_000_000) return `${(n / 1_000_000).toFixed(1)}M`;
  if (n >= 1_000) return `${(n / 1_000).toFixed(1)}K`;
  return String(n);
}

export function thumbnail(playbackUrl: string | null): string | null {
  // The media worker writes thumb.jpg next to the master playlist every 10 s.
  return playbackUrl ? playbackUrl.replace(/master\.m3u8$/, "thumb.jpg") : null;
}

export function navigate(path: string) {
  location.hash = path;
}
