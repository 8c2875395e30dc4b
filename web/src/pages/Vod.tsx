import { useEffect, useRef, useState } from "preact/hooks";
import { errorText, get, request, type PlaybackAccess, type User, type Vod } from "../api";
import { attachVod, setLevel, type VodState } from "../player";
import { compact } from "../util";

// A past broadcast: the recorded renditions, seekable end to end, with a quality selector.
export function duration(secs: number): string {
  const s = Math.round(secs);
  const hms = [Math.floor(s / 3600), Math.floor((s % 3600) / 60), s % 60];
  return (hms[0] ? [hms[0], String(hms[1]).padStart(2, "0")] : [hms[1]]).concat(String(hms[2]).padStart(2, "0")).join(":");
}

// In place of the player, for a followers-only channel's recording this viewer may not play:
// following the channel (signed in) asks again, and the player appears.
function FollowersOnly({ channel, me, reload }: { channel: Channel; me: User | null; reload: () => void }) {
  const [error, setError] = useState<string | null>(null);
  const name = channel.display_name || channel.username;
  const follow = () =>
    request("PUT", `/api/users/${channel.id}/follow`)
      .then(reload)
      .catch((e) => setError(errorText(e)));
  return (
    <div class="locked" data-testid="followers-only">
      <p>Only {name}'s followers can watch this.</p>
      {me ? (
        <button type="button" class="primary" onClick={follow} data-testid="follow-to-watch">
          Follow {name}
        </button>
      ) : (
        <a class="button primary" href="#/login">Sign in to follow</a>
      )}
      {error ? <p class="error" role="alert">{error}</p> : null}
    </div>
  );
}

type Channel = { id: string; username: string; display_name: string };

// What shows in place of the player when the API gave this viewer no link: the followers-only
// lock, or (a server that cannot sign links) a plain notice.
function Locked({ access, channel, me, reload }: { access: PlaybackAccess; channel: Channel; me: User | null; reload: () => void }) {
  if (access === "followers") return <FollowersOnly channel={channel} me={me} reload={reload} />;
  return (
    <div class="locked" data-testid="unplayable">
      <p>This recording cannot be played right now.</p>
    </div>
  );
}

// How many times a page restarts its player on its own (a fresh link after a 403, the same one
// after a 404 the API did not explain) before it says what is wrong instead.
const MAX_RESTARTS = 2;

// A recording (a VOD or a clip) from the API at `path`, and its player. Asked again when who is
// signed in changes (signed links are made out to who asked); the newest ask wins (answers can
// cross). A 403 while playing is a link that expired: the page asks for a fresh one and plays
// on from where it was.
function useRecording<T extends { playback_url: string | null }>(path: string, who: string | undefined, video: { current: HTMLVideoElement | null }) {
  const [item, setItem] = useState<T | null>(null);
  const [gone, setGone] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [ps, setPs] = useState<VodState | null>(null);
  const [starts, setStarts] = useState(0);
  const asked = useRef(0);
  const restarts = useRef(0);
  // Whether the next player goes on from where the last one stopped (a restart of the same
  // recording), and where that was.
  const resume = useRef(false);
  const lastAt = useRef<number | undefined>(undefined);
  const load = (): Promise<T | null> => {
    const n = ++asked.current;
    return get<T>(path).then(
      (it) => (n === asked.current && setItem(it), it),
      (e) => {
        if (n === asked.current) e?.status === 404 ? setGone(true) : setError(errorText(e));
        return null;
      },
    );
  };
  useEffect(() => {
    restarts.current = 0;
    resume.current = false;
    load();
  }, [path, who]);
  useEffect(() => {
    const el = video.current;
    if (!el || !item?.playback_url) return;
    const at = resume.current ? lastAt.current : undefined;
    resume.current = false;
    // A fresh state: the last player's refusal must not stand for this one's.
    setPs(null);
    const stop = attachVod(el, item.playback_url, setPs, at);
    return () => {
      // Where the video is as the player stops (it played on from its buffer while the page
      // asked for a new link).
      lastAt.current = el.currentTime;
      stop();
    };
  }, [item?.playback_url, starts]);
  // Uses up one of the page's restarts; false when none is left.
  const takeRestart = () => restarts.current++ < MAX_RESTARTS;
  // The player again on the same link, from where it was.
  const restart = () => {
    resume.current = true;
    setStarts((n) => n + 1);
  };
  // Asks the API again and goes on from where the video was: on a new link at once, or (when
  // the answer has none: the lock shows) on the one given after, say, following the channel.
  // `onSame` runs when the API gives the same link back.
  const renew = (onSame: () => void) => {
    const was = item?.playback_url;
    resume.current = true;
    load().then((it) => it?.playback_url && it.playback_url === was && onSame());
  };
  useEffect(() => {
    if (!ps?.refused) return;
    const refused = () => setError("this recording's link was refused");
    // The same link again would be refused again.
    if (takeRestart()) renew(refused);
    else refused();
  }, [ps?.refused]);
  return { item, gone, setGone, error, setError, ps, load, renew, restart, takeRestart };
}

export function VodPage({ vodId, me }: { vodId: string; me: User | null }) {
  const video = useRef<HTMLVideoElement>(null);
  const { item: vod, gone, setGone, error, setError, ps, load, renew, restart, takeRestart } = useRecording<Vod>(`/api/vods/${vodId}`, me?.id, video);
  const [level, setLvl] = useState(-1);
  // A 404 mid-playback: the API says whether the broadcast itself is gone (the page then says
  // so); if not, play on from where it was, on the link it gives (a couple of times, not
  // forever).
  useEffect(() => {
    if (!ps?.gone) return;
    if (takeRestart()) renew(restart);
    else setError("part of this broadcast cannot be played");
  }, [ps?.gone]);
  if (gone) {
    return (
      <section class="panel" data-testid="vod-gone">
        <h1>This broadcast was deleted</h1>
        <p class="hint">Its streamer deleted it, or it reached the end of its retention.</p>
      </section>
    );
  }
  if (!vod) return <section class="panel">{error ? <p class="error">{error}</p> : <p class="hint">Loading…</p>}</section>;
  const owner = me && (me.id === vod.streamer.id || me.role === "admin");
  const remove = async () => {
    if (!confirm("Delete this broadcast for everyone?")) return;
    try {
      await request("DELETE", `/api/vods/${vod.id}`);
      setGone(true);
    } catch (e) {
      setError(errorText(e));
    }
  };
  return (
    <div class="vod">
      <div class="player">
        {vod.playback_url ? (
          <video ref={video} controls playsInline data-testid="vod-video" poster={vod.thumbnail_url ?? undefined} />
        ) : (
          <Locked access={vod.playback_access} channel={vod.streamer} me={me} reload={load} />
        )}
        {ps?.error ? <div class="player-msg">{ps.error}</div> : null}
      </div>
      <section class="panel">
        <div class="row">
          <h1 data-testid="vod-title">{vod.title}</h1>
          <select
            aria-label="Quality"
            data-testid="quality"
            value={String(level)}
            onChange={(e) => {
              const l = Number(e.currentTarget.value);
              setLvl(l);
              if (video.current) setLevel(video.current, l);
            }}
          >
            <option value="-1">Auto</option>
            {(ps?.levels ?? []).map((l) => (
              <option key={l.index} value={String(l.index)}>
                {l.height}p
              </option>
            ))}
          </select>
        </div>
        <p class="sub">
          <a href={`#/watch/${vod.stream_id}`}>{vod.streamer.display_name || vod.streamer.username}</a> ·{" "}
          {new Date(vod.recorded_at).toLocaleString()} · <span data-testid="vod-duration">{duration(vod.duration_secs)}</span> · peak{" "}
          {compact(vod.peak_viewers)} viewers
        </p>
        <p class="hint">Kept until {new Date(vod.expires_at).toLocaleDateString()}.</p>
        {error ? <p class="error" role="alert">{error}</p> : null}
        {owner ? (
          <button type="button" class="danger" onClick={remove} data-testid="vod-delete">
            Delete broadcast
          </button>
        ) : null}
      </section>
    </div>
  );
}

interface Clip {
  id: string;
  channel: { id: string; username: string; display_name: string };
  creator_id: string | null;
  title: string;
  vod_id: string | null;
  stream_id: string | null;
  duration_secs: number;
  // Absent when this viewer may not play it (a followers-only channel's, for anyone else).
  playback_url: string | null;
  playback_access: PlaybackAccess;
  created_at: string;
}

// A clip: its own copies of a few seconds of a broadcast, playing on after the VOD is gone.
export function ClipPage({ clipId, me }: { clipId: string; me: User | null }) {
  const video = useRef<HTMLVideoElement>(null);
  const { item: clip, gone, setGone, error, setError, ps, load } = useRecording<Clip>(`/api/clips/${clipId}`, me?.id, video);
  useEffect(() => {
    if (ps?.gone) load();
  }, [ps?.gone]);
  if (gone) {
    return (
      <section class="panel" data-testid="clip-gone">
        <h1>This clip was deleted</h1>
      </section>
    );
  }
  if (!clip) return <section class="panel">{error ? <p class="error">{error}</p> : <p class="hint">Loading…</p>}</section>;
  const mayDelete = me && (me.id === clip.creator_id || me.id === clip.channel.id || me.role === "admin");
  const remove = async () => {
    if (!confirm("Delete this clip?")) return;
    try {
      await request("DELETE", `/api/clips/${clip.id}`);
      setGone(true);
    } catch (e) {
      setError(errorText(e));
    }
  };
  return (
    <div class="vod">
      <div class="player">
        {clip.playback_url ? (
          <video ref={video} controls playsInline data-testid="clip-video" />
        ) : (
          <Locked access={clip.playback_access} channel={clip.channel} me={me} reload={load} />
        )}
        {ps?.error ? <div class="player-msg">{ps.error}</div> : null}
      </div>
      <section class="panel">
        <h1 data-testid="clip-title">{clip.title}</h1>
        <p class="sub">
          {clip.channel.display_name || clip.channel.username} · <span data-testid="clip-duration">{duration(clip.duration_secs)}</span> ·{" "}
          {clip.vod_id ? <a href={`#/vod/${clip.vod_id}`}>Watch the broadcast</a> : "from a live broadcast"}
        </p>
        <p class="hint">
          Share: <code>{location.href}</code>
        </p>
        {error ? <p class="error" role="alert">{error}</p> : null}
        {mayDelete ? (
          <button type="button" class="danger" onClick={remove}>
            Delete clip
          </button>
        ) : null}
      </section>
    </div>
  );
}
