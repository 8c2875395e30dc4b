// Multi-CDN failover for hls.js. The API hands each viewer an ordered list of places to play a
// stream from (CDNs first, the origin last; POST /api/streams/{id}/playback). Every URL hls.js
// loads sits under one of them: the master's directory, then relative playlists, parts and
// segments beneath it. This loader wraps hls.js's own and sends each request to the source in
// use; when a source fails a request (no connection, a 5xx, no answer in time) it moves to the
// next one and asks that one at once, inside the same load, so hls.js sees a slow answer rather
// than an error and keeps its position, buffer and level. The moves are kept for the heartbeat,
// which reports them (the API's per-CDN circuit breaker feeds on those reports).
import Hls, { LoadStats, type Loader, type LoaderCallbacks, type LoaderConfiguration, type LoaderContext, type LoaderStats, type HlsConfig } from "hls.js";
import type { PlaybackSource } from "./api";

export type FailoverReason = "timeout" | "network" | "server_error" | "client_error" | "stall";

export interface FailoverReport {
  from: string;
  reason: FailoverReason;
}

// A source's directory: what every URL under it starts with.
function dirOf(master: string): string {
  return master.slice(0, master.lastIndexOf("/") + 1);
}

export class Failover {
  private sources: PlaybackSource[];
  // Each source's directories, newest first: a renewal adds the new link's, and hls.js keeps
  // asking under the old one for the levels and parts it already knows.
  private dirs: string[][];
  private index = 0;
  private reports: FailoverReport[] = [];
  // Listeners told of each move (the player's UI and tests).
  onMove?: (from: PlaybackSource, to: PlaybackSource, reason: FailoverReason) => void;

  // `from`: the name of the source to start from when the list has it (a player restarted, e.g.
  // into or out of the rewind window, keeps to the source it had moved to rather than asking
  // again those it left).
  constructor(sources: PlaybackSource[], private dvr = false, from?: string) {
    if (sources.length === 0) throw new Error("no playback sources");
    this.sources = sources;
    this.index = Math.max(0, sources.findIndex((s) => s.name === from));
    this.dirs = sources.map((s) => [dirOf(this.urlOf(s))]);
  }

  private urlOf(s: PlaybackSource): string {
    return this.dvr ? (s.dvr_url ?? s.url) : s.url;
  }

  get current(): PlaybackSource {
    return this.sources[this.index];
  }

  get url(): string {
    return this.urlOf(this.current);
  }

  get position(): number {
    return this.index;
  }

  // Whether a source follows the one at `at`.
  hasNext(at: number): boolean {
    return at + 1 < this.sources.length;
  }

  // `url` moved under the source in use (URLs under no source are left alone).
  rewrite(url: string): string {
    const here = this.dirs[this.index][0];
    if (url.startsWith(here)) return url;
    const from = this.dirs.flat().find((d) => url.startsWith(d));
    return from ? here + url.slice(from.length) : url;
  }

  // Move past the source at `from` (if it is still the one in use: requests failing together
  // move once). False when there is nowhere left to go.
  next(from: number, reason: FailoverReason): boolean {
    if (this.index !== from) return true;
    if (this.index + 1 >= this.sources.length) return false;
    const left = this.current;
    this.index += 1;
    if (this.reports.length < 8) this.reports.push({ from: left.name, reason });
    this.onMove?.(left, this.current, reason);
    return true;
  }

  // New links for the same sources (a renewed signature): each source keeps its place in the
  // list, and the one in use stays in use. A source the new list lacks (a CDN out of new lists
  // for a while) gets the new token in its old link: a token is the same on every base.
  update(sources: PlaybackSource[]) {
    const token = (s: PlaybackSource) => s.url.match(/\/t\/([^/]+)\/master\.m3u8$/)?.[1];
    const fresh = sources.map(token).find(Boolean);
    const retoken = (s: PlaybackSource): PlaybackSource => {
      const old = token(s);
      if (!fresh || !old) return s;
      const swap = (u?: string) => u?.replace(`/t/${old}/`, `/t/${fresh}/`);
      return { ...s, url: swap(s.url)!, dvr_url: swap(s.dvr_url) };
    };
    this.sources = this.sources.map((old, i) => {
      const renewed = sources.find((s) => s.name === old.name) ?? retoken(old);
      const dir = dirOf(this.urlOf(renewed));
      if (!this.dirs[i].includes(dir)) this.dirs[i] = [dir, ...this.dirs[i]].slice(0, 4);
      return renewed;
    });
  }

  // The moves since the last call (for the heartbeat).
  takeReports(): FailoverReport[] {
    const r = this.reports;
    this.reports = [];
    return r;
  }

  // The hls.js loader class that plays through these sources.
  loader(): new (config: HlsConfig) => Loader<LoaderContext> {
    const failover = this;
    const Inner = Hls.DefaultConfig.loader;
    return class FailoverLoader implements Loader<LoaderContext> {
      context: LoaderContext | null = null;
      private inner: Loader<LoaderContext> | null = null;
      // One stats object for the loader's life: hls.js takes it (`frag.stats = loader.stats`)
      // before it calls load(), and reads progress from it (bandwidth, abandon checks) while
      // each attempt's inner loader fills it in.
      stats: LoaderStats = new LoadStats();
      private done = false;

      constructor(private config: HlsConfig) {}

      load(context: LoaderContext, config: LoaderConfiguration, callbacks: LoaderCallbacks<LoaderContext>) {
        this.context = context;
        this.done = false;
        this.attempt(context, config, callbacks);
      }

      private attempt(context: LoaderContext, config: LoaderConfiguration, callbacks: LoaderCallbacks<LoaderContext>) {
        const at = failover.position;
        this.inner?.destroy();
        const inner = new Inner(this.config);
        // A fresh start on the shared stats (a loader refuses stats that already started).
        const stats = this.stats;
        stats.loading = { start: 0, first: 0, end: 0 };
        stats.loaded = 0;
        stats.aborted = false;
        inner.stats = stats;
        this.inner = inner;
        const retry = (reason: FailoverReason) => !this.done && failover.next(at, reason) && (this.attempt(context, config, callbacks), true);
        // hls.js's loader retries a timeout or a 5xx itself, with backoff, before it gives up:
        // seconds spent on a source that is down. While another source follows, it gives up at
        // once and the next source is asked instead; the last one retries as hls.js would.
        const own = failover.hasNext(at)
          ? { ...config, loadPolicy: { ...config.loadPolicy, errorRetry: null, timeoutRetry: null } }
          : config;
        // hls.js sees its own context in every callback (it compares them); the inner loader
        // gets a copy with the URL moved under the source in use. Playlists resolve their
        // relative URIs against the response's URL, which is that source's.
        const moved = { ...context, url: failover.rewrite(context.url) };
        inner.load(moved, own, {
          onSuccess: (response, stats, _ctx, net) => callbacks.onSuccess(response, stats, context, net),
          onError: (error, _ctx, net, stats) => {
            const reason = failoverReason(error.code, fromOrigin(net));
            if (reason && retry(reason)) return;
            callbacks.onError(error, context, net, stats);
          },
          onTimeout: (stats, _ctx, net) => {
            if (retry("timeout")) return;
            callbacks.onTimeout(stats, context, net);
          },
          onAbort: callbacks.onAbort && ((stats, _ctx, net) => callbacks.onAbort!(stats, context, net)),
          onProgress: callbacks.onProgress && ((stats, _ctx, data, net) => callbacks.onProgress!(stats, context, data, net)),
        });
      }

      abort() {
        this.done = true;
        this.inner?.abort();
      }

      destroy() {
        this.done = true;
        this.inner?.destroy();
        this.inner = null;
        this.context = null;
      }

      getCacheAge() {
        return this.inner?.getCacheAge?.() ?? null;
      }

      getResponseHeader(name: string) {
        return this.inner?.getResponseHeader?.(name) ?? null;
      }
    };
  }
}

// Which failures move to the next source: no connection (0), and the errors of a source that
// cannot reach the origin or breaks (5xx). Not the origin's own 503s (a stream starting, a
// direct viewer over capacity), which it marks (`X-Onair-From: origin`, passed through by every
// source): they would be the same everywhere, and hls.js retries them on its own backoff. A CDN
// answering 503 because its backend is down sends no mark, and is left. Nor a 4xx: the same
// answer everywhere (a part not out yet, an expired link).
function failoverReason(code: number, fromOrigin: boolean): FailoverReason | null {
  if (code === 0) return "network";
  if (code >= 500 && !(code === 503 && fromOrigin)) return "server_error";
  return null;
}

// Whether a failed answer carries the origin's mark (crates/domain `playback::FROM_HEADER`).
// The XHR hls.js loads with; asked only when the header is readable, so the browser logs no
// "unsafe header" refusal for a CDN's own answers.
const FROM_HEADER = "x-onair-from";
function fromOrigin(net: unknown): boolean {
  const xhr = net as XMLHttpRequest | null;
  if (typeof xhr?.getAllResponseHeaders !== "function") return false;
  if (!xhr.getAllResponseHeaders().toLowerCase().includes(`${FROM_HEADER}:`)) return false;
  return xhr.getResponseHeader(FROM_HEADER) === "origin";
}
