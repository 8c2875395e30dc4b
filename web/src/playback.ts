// Where a viewer plays a live stream from (CDNs, then the origin; `failover.ts`): asked once the
// stream plays, and again before signed links expire. A renewal changes the links of the player
// already playing (its Failover), never restarts it. One rule for every live player: the watch
// page and the streamer's preview on the dashboard.
import { useEffect, useRef, useState } from "preact/hooks";
import { errorText, playbackSources, type ApiError, type PlaybackSources, type Stream } from "./api";
import { Failover } from "./failover";

// Renewed this long before the links expire (a renewal that fails is asked again every
// RETRY_MS meanwhile), and never sooner than MIN_RENEW_MS after the last ask.
const RENEW_BEFORE_MS = 5 * 60_000;
const MIN_RENEW_MS = 30_000;
const RETRY_MS = 30_000;

export interface LiveSources {
  // The first answer: the player starts from it. Null until then (and when refused).
  sources: PlaybackSources | null;
  // Why nothing plays: the first ask was refused (a followers-only channel, say).
  refused: string | null;
  // The Failover of the player playing (renewals go to it), for the heartbeat's reports.
  failover: { current: Failover | null };
  // A Failover for a player (re)started now: on the newest links, from the source the last
  // one had moved to (not the CDNs it left). Call once `sources` is there.
  startFailover: (dvr?: boolean) => Failover;
}

// `playable`: the stream is live with a playlist out (before that there is nothing to ask).
// `who`: the signed-in user's id; links are made out to who asked, so a change asks again.
export function usePlaybackSources(stream: Stream, playable: boolean, who?: string): LiveSources {
  const [sources, setSources] = useState<PlaybackSources | null>(null);
  const [refused, setRefused] = useState<string | null>(null);
  const failover = useRef<Failover | null>(null);
  const latest = useRef<PlaybackSources | null>(null);
  // The stream as last rendered: a renewal decides on its current state (`playbackSources`
  // falls back to its plain link for a public stream only).
  const current = useRef(stream);
  current.current = stream;
  useEffect(() => {
    if (!playable) return;
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const ask = async () => {
      try {
        const s = await playbackSources(current.current);
        if (stopped) return;
        setRefused(null);
        latest.current = s;
        if (failover.current) failover.current.update(s.sources);
        else setSources(s);
        if (s.expires_at) {
          const renewIn = Math.max(MIN_RENEW_MS, new Date(s.expires_at).getTime() - Date.now() - RENEW_BEFORE_MS);
          timer = setTimeout(ask, renewIn);
        }
      } catch (e) {
        if (stopped) return;
        // A renewal that fails leaves the player on its links (valid a while longer) and asks
        // again shortly. A first ask that fails says why nothing plays, and is asked again
        // when the failure may pass (the API unreachable, busy or failing; not a refusal).
        if (failover.current) timer = setTimeout(ask, RETRY_MS);
        else {
          setRefused(errorText(e));
          const status = (e as ApiError).status ?? 0;
          if (status === 0 || status === 429 || status >= 500) timer = setTimeout(ask, RETRY_MS);
        }
      }
    };
    ask();
    return () => {
      stopped = true;
      clearTimeout(timer);
      failover.current = null;
      latest.current = null;
      setSources(null);
    };
  }, [stream.id, playable, who]);
  const startFailover = (dvr = false) => {
    const f = new Failover((latest.current ?? sources)!.sources, dvr, failover.current?.current.name);
    failover.current = f;
    return f;
  };
  return { sources, refused, failover, startFailover };
}
