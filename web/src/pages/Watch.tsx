import { useEffect, useRef, useState } from "preact/hooks";
import { get, post, request, errorText, sessionId, type Stream, type User } from "../api";
import { ChatRoom, type ChatMessage, type RoomState } from "../chat";
import { usePolling } from "../hooks";
import { usePlaybackSources } from "../playback";
import { attach, attachDvr, behindNow, canRewind, goLive, setLevel, type PlayerState } from "../player";
import { compact, uptime } from "../util";
import { Ban, Clock, Flag, Fullscreen, Muted, Trash, Volume } from "../icons";

// How far one press of the rewind button goes back.
const REWIND_STEP_SECS = 30;

function Player({ stream, me }: { stream: Stream; me: User | null }) {
  const video = useRef<HTMLVideoElement>(null);
  const box = useRef<HTMLDivElement>(null);
  const [ps, setPs] = useState<PlayerState | null>(null);
  const [volume, setVolume] = useState(1);
  const [muted, setMuted] = useState(false);
  // null: live; a number: rewound that many seconds behind the wall clock (the DVR window).
  const [back, setBack] = useState<number | null>(null);
  const [clip, setClip] = useState<{ id?: string; error?: string; busy?: boolean } | null>(null);
  const live = stream.status === "live";
  const playable = !!stream.playback_url && live;
  // Where this viewer plays from, renewed before signed links expire.
  const { sources, refused, failover, startFailover } = usePlaybackSources(stream, playable, me?.id);
  useEffect(() => {
    // Segments exist once the stream is live; before that there is nothing to load.
    if (!video.current || !playable || !sources) return;
    if (back != null && stream.dvr_url) {
      return attachDvr(video.current, startFailover(true), back, (s) =>
        setPs((p) => ({ levels: s.levels, level: p?.level ?? -1, playingLevel: s.playingLevel, latency: null, atEdge: false, error: s.error })),
      );
    }
    return attach(video.current, startFailover(), setPs);
  }, [sources, playable, back]);
  const rewind = () => {
    const behind = (video.current && behindNow(video.current)) ?? 0;
    setBack(Math.round(behind + REWIND_STEP_SECS));
  };
  const clipIt = async () => {
    setClip({ busy: true });
    try {
      const c = await post<{ id: string }>(`/api/streams/${stream.id}/clips`, { title: `${stream.title}`.slice(0, 140), seconds: 30 });
      setClip({ id: c.id });
    } catch (e) {
      setClip({ error: errorText(e) });
    }
  };
  useEffect(() => {
    // "Still watching": counted among the viewers while the page is open and the stream is on.
    if (!live) return;
    // A beacon: fire and forget, and a beat that races the stream's end is not an error.
    const beat = () => {
      const url = `/api/streams/${stream.id}/heartbeat`;
      // Which source plays, and the ones left since the last beat: the API's per-CDN health.
      const f = failover.current;
      const body = JSON.stringify({ session_id: sessionId(), base: f?.current.name, failovers: f?.takeReports() ?? [] });
      if (!navigator.sendBeacon?.(url, new Blob([body], { type: "application/json" }))) {
        post(url, JSON.parse(body)).catch(() => {});
      }
    };
    beat();
    const t = setInterval(beat, 10_000);
    return () => clearInterval(t);
  }, [stream.id, live]);
  useEffect(() => {
    const v = video.current;
    if (!v) return;
    const on = () => setMuted(v.muted);
    v.addEventListener("volumechange", on);
    return () => v.removeEventListener("volumechange", on);
  }, []);
  if (refused && playable) {
    return (
      <div class="player offline" data-testid="player-note" role="alert">
        {refused}
      </div>
    );
  }
  if (!stream.playback_url) {
    // The API gives the playlist once its first request plays; until then say what is coming
    // (the page polls every second and the player starts the moment it does).
    const note =
      stream.status === "live"
        ? "Starting…"
        : stream.status === "starting"
          ? "Waiting for the streamer to go live…"
          : "This stream is offline.";
    return (
      <div class={`player offline ${stream.status}`} data-testid="player-note" aria-live="polite">
        {note}
      </div>
    );
  }
  return (
    <div class="player" ref={box}>
      <video ref={video} playsInline data-testid="video" onClick={() => video.current?.paused && video.current.play()} />
      {ps?.error ? <div class="player-msg">{ps.error}</div> : null}
      <div class="controls">
        {stream.dvr_url && canRewind() ? (
          <button onClick={rewind} title="Rewind 30 seconds" data-testid="rewind">
            −30 s
          </button>
        ) : null}
        <button
          class={ps?.atEdge === false || back != null ? "edge behind" : "edge"}
          onClick={() => (back != null ? setBack(null) : video.current && goLive(video.current))}
          title="Jump to the live edge"
          data-testid="go-live"
        >
          <span class="live-dot" /> {ps?.atEdge === false || back != null ? "Go live" : "LIVE"}
        </button>
        <span class="latency" data-testid="latency" title="Delay behind the live edge">
          {back != null ? `${Math.round(back)} s back` : ps?.latency != null ? `${ps.latency.toFixed(1)} s behind` : ""}
        </span>
        {me && stream.dvr_url ? (
          <button onClick={clipIt} disabled={clip?.busy} title="Clip the last 30 seconds" data-testid="clip">
            Clip
          </button>
        ) : null}
        {clip?.id ? (
          <a class="button" href={`#/clip/${clip.id}`} data-testid="clip-link">
            Open clip
          </a>
        ) : clip?.error ? (
          <span class="error" role="alert">{clip.error}</span>
        ) : null}
        <span class="spacer" />
        <button class="icon" aria-label={muted ? "Unmute" : "Mute"} onClick={() => video.current && (video.current.muted = !video.current.muted)}>
          {muted ? <Muted /> : <Volume />}
        </button>
        <input
          type="range"
          min="0"
          max="1"
          step="0.05"
          value={volume}
          aria-label="Volume"
          onInput={(e) => {
            const v = Number(e.currentTarget.value);
            setVolume(v);
            if (video.current) {
              video.current.volume = v;
              video.current.muted = v === 0;
            }
          }}
        />
        <select
          aria-label="Quality"
          data-testid="quality"
          value={String(ps?.level ?? -1)}
          onChange={(e) => {
            const level = Number(e.currentTarget.value);
            if (video.current) setLevel(video.current, level);
            setPs((p) => (p ? { ...p, level } : p));
          }}
        >
          <option value="-1">
            Auto{ps && ps.level === -1 && ps.playingLevel >= 0 ? ` (${ps.levels.find((l) => l.index === ps.playingLevel)?.height ?? ""}p)` : ""}
          </option>
          {(ps?.levels ?? []).map((l) => (
            <option key={l.index} value={String(l.index)}>
              {l.height}p
            </option>
          ))}
        </select>
        <button class="icon" aria-label="Fullscreen" onClick={() => (document.fullscreenElement ? document.exitFullscreen() : box.current?.requestFullscreen())}>
          <Fullscreen />
        </button>
      </div>
    </div>
  );
}

function Chat({ stream, me, onStaff }: { stream: Stream; me: User | null; onStaff: (staff: boolean) => void }) {
  const [room, setRoom] = useState<RoomState | null>(null);
  const [text, setText] = useState("");
  const [notice, setNotice] = useState<string | null>(null);
  const roomRef = useRef<ChatRoom | null>(null);
  const list = useRef<HTMLOListElement>(null);
  useEffect(() => {
    const r = new ChatRoom(stream.id, setRoom);
    roomRef.current = r;
    r.open();
    return () => r.close();
  }, [stream.id, me?.id]);
  const isStaff = !!room?.canModerate;
  useEffect(() => onStaff(isStaff), [isStaff]);
  useEffect(() => {
    const l = list.current;
    if (l && l.scrollHeight - l.scrollTop - l.clientHeight < 120) l.scrollTop = l.scrollHeight;
  }, [room?.messages.length]);
  const act = (action: Record<string, unknown>) =>
    roomRef.current?.moderate(action).then(() => setNotice(null)).catch((e) => setNotice(errorText(e)));
  const row = (m: ChatMessage) => (
    <li key={m.id} class="msg" data-message={m.id}>
      {m.user.badges.map((b) => (
        <span key={b} class={`role ${b}`} title={b}>
          {b === "owner" ? "★" : b === "moderator" ? "M" : "A"}
        </span>
      ))}
      <b class="name">{m.user.name}</b> <span class="text">{m.text}</span>
      {isStaff && m.user.id !== me?.id ? (
        <span class="modtools">
          <button aria-label="Delete message" title="Delete" onClick={() => act({ action: "delete", message_id: m.id })}><Trash /></button>
          <button aria-label={`Time out ${m.user.name}`} title="Time out 10 minutes" onClick={() => act({ action: "timeout", user_id: m.user.id, seconds: 600 })}><Clock /></button>
          <button aria-label={`Ban ${m.user.name}`} title="Ban" onClick={() => act({ action: "ban", user_id: m.user.id })}><Ban /></button>
        </span>
      ) : me && m.user.id !== me.id ? (
        <span class="modtools">
          <button aria-label="Report message" title="Report" onClick={() => roomRef.current?.report(m.id).then(() => setNotice("Reported. Thanks."))}><Flag /></button>
        </span>
      ) : null}
    </li>
  );
  return (
    <aside class="chat" aria-label="Chat">
      <header>
        <span>Stream chat</span>
        <span class={room?.connected ? "conn on" : "conn"} data-testid="chat-status">
          {room?.connected ? "connected" : "connecting…"}
        </span>
      </header>
      <ol class="messages" ref={list} data-testid="chat-messages" aria-live="polite">
        {(room?.messages ?? []).map(row)}
      </ol>
      {room?.slowMode ? <div class="notice">Slow mode: one message every {room.slowMode} s</div> : null}
      {room?.error || notice ? (
        <div class="error" role="alert" data-testid="chat-error">
          {room?.error ?? notice}
        </div>
      ) : null}
      {me ? (
        <form
          class="send"
          onSubmit={(e) => {
            e.preventDefault();
            const t = text.trim();
            if (t && roomRef.current?.send(t)) setText("");
          }}
        >
          <input
            aria-label="Send a message"
            placeholder={room?.ended ? "The stream has ended" : "Send a message"}
            maxLength={500}
            value={text}
            disabled={room?.ended}
            onInput={(e) => setText(e.currentTarget.value)}
          />
          <button class="primary" type="submit" disabled={room?.ended}>Chat</button>
        </form>
      ) : (
        <p class="signin">
          <a href="#/login">Log in</a> to chat.
        </p>
      )}
    </aside>
  );
}

export function Watch({ streamId, me }: { streamId: string; me: User | null }) {
  // Every second until the stream plays (a viewer waiting for it to start sees it at once),
  // every half second in the moment between the publisher connecting and the first media, then
  // every 5 s.
  const [every, setEvery] = useState(1000);
  const [loaded, loadError] = usePolling(() => get<Stream>(`/api/streams/${streamId}`), [streamId], every);
  // Once the playlist plays it stays until the stream ends: a poll that could not ask the media
  // in time must not tear down a playing player.
  const seen = useRef<{ id: string; url: string } | null>(null);
  const on = loaded?.status === "live" || loaded?.status === "ending";
  if (loaded?.playback_url && on) seen.current = { id: loaded.id, url: loaded.playback_url };
  else if (!on || seen.current?.id !== loaded?.id) seen.current = null;
  const stream = loaded && { ...loaded, playback_url: seen.current?.url ?? null };
  const playable = stream?.status === "live" && !!stream.playback_url;
  const over = stream?.status === "ended" || stream?.status === "failed";
  const starting = stream?.status === "live" && !stream.playback_url;
  useEffect(() => setEvery(starting ? 500 : playable || over ? 5000 : 1000), [starting, playable, over]);
  const [error, setError] = useState<string | null>(null);
  const [following, setFollowing] = useState<boolean | null>(null);
  const [isStaff, setStaff] = useState(false);
  useEffect(() => {
    if (!me || !stream) return;
    get<{ items: { id: string }[] } | { id: string }[]>(`/api/users/${me.id}/following?limit=100`)
      .then((f) => {
        const items = Array.isArray(f) ? f : f.items;
        setFollowing(items.some((u) => u.id === stream.streamer.id));
      })
      .catch(() => setFollowing(false));
  }, [me?.id, stream?.streamer.id]);
  if (loadError && !stream) return <p class="error page">{loadError}</p>;
  if (!stream) return <div class="boot" aria-busy="true" />;
  const name = stream.streamer.display_name || stream.streamer.username;
  return (
    <div class="watch">
      <section class="stage">
        <Player stream={stream} me={me} />
        <div class="info">
          <div class="avatar big" aria-hidden="true">{name.slice(0, 1).toUpperCase()}</div>
          <div class="grow">
            <h1 data-testid="stream-title">{stream.title}</h1>
            <div class="sub">
              <b>{name}</b> · <a href={`#/category/${stream.category}`}>{stream.category}</a>
              {stream.tags.map((t) => (
                <span class="tag" key={t}>{t}</span>
              ))}
            </div>
          </div>
          <div class="stats">
            {stream.status === "live" ? <span class="badge live">LIVE</span> : <span class="badge">{stream.status}</span>}
            <span data-testid="viewer-count">{compact(stream.viewers)} watching</span>
            <span>{uptime(stream.started_at)}</span>
            {me && me.id !== stream.streamer.id ? (
              <button
                class={following ? "" : "primary"}
                onClick={() =>
                  request(following ? "DELETE" : "PUT", `/api/users/${stream.streamer.id}/follow`)
                    .then(() => setFollowing(!following))
                    .catch((e) => setError(errorText(e)))
                }
              >
                {following ? "Following" : "Follow"}
              </button>
            ) : null}
            {isStaff ? <a class="button" href={`#/moderate/${stream.streamer.id}`}>Moderation</a> : null}
            {error ? <span class="error" role="alert">{error}</span> : null}
          </div>
        </div>
      </section>
      <Chat stream={stream} me={me} onStaff={setStaff} />
    </div>
  );
}
