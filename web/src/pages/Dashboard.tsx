import { useEffect, useRef, useState } from "preact/hooks";
import { errorText, get, post, request, updateUser, type Category, type Page, type Stream, type User, type Vod } from "../api";
import { usePlaybackSources } from "../playback";
import { attach } from "../player";
import { compact, uptime } from "../util";
import { duration } from "./Vod";

interface KeyInfo {
  exists: boolean;
  prefix: string | null;
  created_at: string | null;
  ingest_url: string;
}

interface Analytics {
  samples: { at: string; viewers: number; chat_messages: number }[];
  peak_viewers: number;
  average_viewers: number;
  unique_viewers: number;
  watch_minutes: number;
  chat_messages: number;
  chat_per_minute: { minute: string; messages: number }[];
  followers_gained: number;
  encode_speed: number | null;
  dropped_frames: number;
}

// The key is kept only in memory, and only after the server showed it (start or rotate):
// the server stores its hash and can never show it again.
let revealedKey: string | null = null;

function KeyPanel({ info, onRotated }: { info: KeyInfo | null; onRotated: (k: string) => void }) {
  const [shown, setShown] = useState(false);
  const [copied, setCopied] = useState(false);
  const key = revealedKey;
  const masked = info?.prefix ? `${info.prefix}${"•".repeat(24)}` : "no key yet";
  return (
    <section class="panel">
      <h2>Stream key</h2>
      <p class="hint">Anyone with this key can stream as you. It is shown only right after it is made.</p>
      <div class="keyrow">
        <code data-testid="stream-key">{shown && key ? key : masked}</code>
        {key ? (
          <>
            <button onClick={() => setShown(!shown)}>{shown ? "Hide" : "Reveal"}</button>
            <button
              onClick={() => navigator.clipboard?.writeText(key).then(() => (setCopied(true), setTimeout(() => setCopied(false), 1500)))}
            >
              {copied ? "Copied" : "Copy"}
            </button>
          </>
        ) : null}
        <button
          class="danger"
          onClick={() => {
            if (!confirm("Rotate your stream key? The old key stops working at once, and OBS needs the new one.")) return;
            post<{ stream_key: string }>("/api/users/me/stream-key").then((k) => {
              revealedKey = k.stream_key;
              setShown(true);
              onRotated(k.stream_key);
            });
          }}
        >
          Rotate
        </button>
      </div>
      <h3>OBS settings</h3>
      <dl class="obs">
        <dt>Service</dt>
        <dd>Custom…</dd>
        <dt>Server</dt>
        <dd>
          <code data-testid="ingest-url">{info?.ingest_url ?? ""}</code>
        </dd>
        <dt>Stream key</dt>
        <dd>the key above</dd>
        <dt>Encoder</dt>
        <dd>x264 (or NVENC/QuickSync H.264), rate control CBR, 3,000-6,000 kbps for 720p-1080p</dd>
        <dt>Keyframe interval</dt>
        <dd>1 s (the ladder cuts 1 s segments on keyframes: lower latency)</dd>
        <dt>Profile / tune</dt>
        <dd>high, zerolatency; B-frames 0-2</dd>
        <dt>Audio</dt>
        <dd>AAC, 160 kbps, 48 kHz</dd>
      </dl>
    </section>
  );
}

function Chart({ points, label }: { points: number[]; label: string }) {
  const w = 520;
  const h = 120;
  const max = Math.max(1, ...points);
  const step = points.length > 1 ? w / (points.length - 1) : w;
  const path = points.map((p, i) => `${i === 0 ? "M" : "L"}${(i * step).toFixed(1)},${(h - (p / max) * (h - 8)).toFixed(1)}`).join(" ");
  return (
    <figure class="chart">
      <figcaption>
        {label} <span class="count">max {compact(max)}</span>
      </figcaption>
      <svg viewBox={`0 0 ${w} ${h}`} preserveAspectRatio="none" role="img" aria-label={label}>
        {points.length > 1 ? (
          <>
            <path d={`${path} L${w},${h} L0,${h} Z`} class="area" />
            <path d={path} class="line" />
          </>
        ) : (
          <text x="8" y={h / 2}>collecting…</text>
        )}
      </svg>
    </figure>
  );
}

function Stats({ stream }: { stream: Stream }) {
  const [a, setA] = useState<Analytics | null>(null);
  useEffect(() => {
    let live = true;
    const load = () => get<Analytics>(`/api/streams/${stream.id}/analytics`).then((r) => live && setA(r)).catch(() => {});
    load();
    const t = stream.status === "live" || stream.status === "starting" ? setInterval(load, 10_000) : undefined;
    return () => {
      live = false;
      clearInterval(t);
    };
  }, [stream.id, stream.status]);
  if (!a) return null;
  return (
    <div class="stats-panel">
      <div class="kpis">
        <div><b>{compact(a.peak_viewers)}</b>peak viewers</div>
        <div><b>{a.average_viewers.toFixed(1)}</b>average</div>
        <div><b>{compact(a.unique_viewers)}</b>unique</div>
        <div><b>{compact(Math.round(a.watch_minutes))}</b>minutes watched</div>
        <div><b>{compact(a.chat_messages)}</b>chat messages</div>
        <div><b>{a.followers_gained}</b>new followers</div>
        {a.encode_speed != null ? <div><b>{a.encode_speed.toFixed(2)}×</b>encode speed</div> : null}
      </div>
      <Chart label="Viewers" points={a.samples.map((s) => s.viewers)} />
      <Chart label="Chat messages per minute" points={a.chat_per_minute.map((c) => c.messages)} />
    </div>
  );
}

// The streamer's own view of the broadcast, from the links a viewer gets (renewed the same way,
// so a signed channel's preview plays on past its first link's lifetime).
function Preview({ stream }: { stream: Stream }) {
  const video = useRef<HTMLVideoElement>(null);
  const { sources, startFailover } = usePlaybackSources(stream, true);
  useEffect(() => {
    if (!video.current || !sources) return;
    video.current.muted = true;
    return attach(video.current, startFailover(), () => {});
  }, [sources]);
  return <video class="preview" ref={video} muted playsInline data-testid="preview" />;
}

export function Dashboard({ me }: { me: User }) {
  const [info, setInfo] = useState<KeyInfo | null>(null);
  const [categories, setCategories] = useState<Category[]>([]);
  const [streams, setStreams] = useState<Stream[]>([]);
  const [vods, setVods] = useState<Map<string, Vod>>(new Map());
  const [title, setTitle] = useState("");
  const [category, setCategory] = useState("");
  const [tags, setTags] = useState("");
  const [error, setError] = useState<{ text: string; field?: string } | null>(null);
  const [busy, setBusy] = useState(false);
  const [open, setOpen] = useState<string | null>(null);
  const [, setTick] = useState(0);

  const loadStreams = () =>
    Promise.all([
      get<Page<Stream>>(`/api/users/${me.id}/streams?limit=20`).then((p) => setStreams(p.items)),
      // Each past broadcast's recording, once it is a VOD.
      get<Page<Vod>>(`/api/users/${me.id}/vods?limit=50`).then((p) => setVods(new Map(p.items.map((v) => [v.stream_id, v])))),
    ]);
  useEffect(() => {
    get<KeyInfo>("/api/users/me/stream-key").then(setInfo).catch(() => {});
    get<Category[]>("/api/categories").then((c) => {
      setCategories(c);
      setCategory((cur) => cur || c[0]?.slug || "");
    });
    loadStreams();
    const t = setInterval(() => (loadStreams(), setTick((n) => n + 1)), 5000);
    return () => clearInterval(t);
  }, [me.id]);

  const active = streams.find((s) => s.status === "live" || s.status === "starting" || s.status === "ending");
  const past = streams.filter((s) => s !== active);
  useEffect(() => {
    if (active) {
      setTitle((t) => t || active.title);
      setTags((t) => t || active.tags.join(", "));
    }
  }, [active?.id]);
  const tagList = () => tags.split(",").map((t) => t.trim()).filter(Boolean);

  const start = async () => {
    setBusy(true);
    setError(null);
    try {
      const r = await post<{ stream: Stream; ingest: { url: string; stream_key: string | null } }>("/api/streams/start", {
        title,
        category,
        tags: tagList(),
      });
      if (r.ingest.stream_key) revealedKey = r.ingest.stream_key;
      setInfo(await get<KeyInfo>("/api/users/me/stream-key"));
      await loadStreams();
    } catch (e: any) {
      setError({ text: errorText(e), field: e?.field });
    } finally {
      setBusy(false);
    }
  };
  const save = async () => {
    if (!active) return;
    try {
      await request("PATCH", `/api/streams/${active.id}`, { title, category, tags: tagList() });
      await loadStreams();
      setError(null);
    } catch (e: any) {
      setError({ text: errorText(e), field: e?.field });
    }
  };
  const stop = async () => {
    if (!active || !confirm("End the stream for everyone watching?")) return;
    setBusy(true);
    try {
      await post(`/api/streams/${active.id}/stop`);
      await loadStreams();
    } catch (e) {
      setError({ text: errorText(e) });
    } finally {
      setBusy(false);
    }
  };

  const deleteVod = async (v: Vod) => {
    if (!confirm(`Delete the recording of "${v.title}" for everyone?`)) return;
    try {
      await request("DELETE", `/api/vods/${v.id}`);
      await loadStreams();
    } catch (e) {
      setError({ text: errorText(e) });
    }
  };
  const setChannel = async (change: Partial<Pick<User, "record_broadcasts" | "record_renditions" | "playback_access">>) => {
    try {
      updateUser(await request<User>("PATCH", "/api/users/me", change));
    } catch (e) {
      setError({ text: errorText(e) });
    }
  };

  return (
    <div class="dashboard">
      <div class="col">
        <section class="panel">
          <div class="row">
            <h1>Creator dashboard</h1>
            {active ? (
              <span class={active.status === "live" ? "badge live" : "badge"} data-testid="stream-status">
                {active.status === "live" ? `LIVE · ${uptime(active.started_at)}` : active.status.toUpperCase()}
              </span>
            ) : (
              <span class="badge" data-testid="stream-status">OFFLINE</span>
            )}
          </div>
          <form
            class="form"
            onSubmit={(e) => {
              e.preventDefault();
              active ? save() : start();
            }}
          >
            <label>
              Title
              <input name="title" value={title} maxLength={140} required onInput={(e) => setTitle(e.currentTarget.value)} aria-invalid={error?.field === "title"} />
            </label>
            <label>
              Category
              <select name="category" value={category} onChange={(e) => setCategory(e.currentTarget.value)}>
                {categories.map((c) => (
                  <option key={c.slug} value={c.slug}>{c.name}</option>
                ))}
              </select>
            </label>
            <label>
              Tags <span class="hint">comma separated</span>
              <input name="tags" value={tags} placeholder="speedrun, chill" onInput={(e) => setTags(e.currentTarget.value)} aria-invalid={error?.field === "tags"} />
            </label>
            {error ? <p class="error" role="alert">{error.text}</p> : null}
            <div class="actions">
              {active ? (
                <>
                  <button type="submit">Save</button>
                  <a class="button" href={`#/watch/${active.id}`}>Open watch page</a>
                  <button type="button" class="danger" disabled={busy} onClick={stop}>End stream</button>
                </>
              ) : (
                <button type="submit" class="primary" disabled={busy || !title.trim()}>Start stream</button>
              )}
            </div>
          </form>
        </section>
        {active ? (
          <section class="panel">
            <h2>Live preview</h2>
            {active.playback_url && active.status === "live" ? <Preview stream={active} /> : <div class="preview" />}
            <p class="hint">{active.status === "starting" ? "Waiting for OBS: publish to the server below with your key." : `${compact(active.viewers)} watching now`}</p>
            <Stats stream={active} />
          </section>
        ) : null}
        <section class="panel">
          <h2>Past broadcasts</h2>
          {past.length === 0 ? <p class="hint">Your ended streams and their numbers appear here.</p> : null}
          <ul class="past">
            {past.map((s) => (
              <li key={s.id}>
                <button class="link" onClick={() => setOpen(open === s.id ? null : s.id)} aria-expanded={open === s.id}>
                  <b>{s.title}</b> <span class="sub">{new Date(s.created_at).toLocaleString()} · peak {compact(s.peak_viewers)}</span>
                </button>
                {vods.get(s.id) ? (
                  <>
                    <a class="vod-link" href={`#/vod/${vods.get(s.id)!.id}`} data-testid="vod-link">
                      Watch ({duration(vods.get(s.id)!.duration_secs)})
                    </a>
                    <button class="link danger" onClick={() => deleteVod(vods.get(s.id)!)}>Delete recording</button>
                  </>
                ) : null}
                {open === s.id ? <Stats stream={s} /> : null}
              </li>
            ))}
          </ul>
        </section>
      </div>
      <div class="col narrow">
        <KeyPanel info={info} onRotated={() => get<KeyInfo>("/api/users/me/stream-key").then(setInfo)} />
        <section class="panel">
          <h2>Recording</h2>
          <label class="check">
            <input
              type="checkbox"
              data-testid="record-broadcasts"
              checked={me.record_broadcasts !== false}
              onChange={(e) => setChannel({ record_broadcasts: e.currentTarget.checked })}
            />
            Record my broadcasts and keep them as past broadcasts
          </label>
          <label>
            Qualities kept
            <select
              data-testid="record-renditions"
              value={me.record_renditions ?? "all"}
              disabled={me.record_broadcasts === false}
              onChange={(e) =>
                setChannel({ record_renditions: e.currentTarget.value as User["record_renditions"] })
              }
            >
              <option value="all">Every quality viewers get</option>
              <option value="top_and_lowest">Only the best and the lowest (less storage)</option>
            </select>
          </label>
          <p class="hint">Applies from your next broadcast. Each recording's page says how long it is kept.</p>
        </section>
        <section class="panel">
          <h2>Who can watch</h2>
          <label>
            Playback
            <select
              data-testid="playback-access"
              value={me.playback_access ?? "public"}
              onChange={(e) => setChannel({ playback_access: e.currentTarget.value as User["playback_access"] })}
            >
              <option value="public">Anyone, with a link they can share</option>
              <option value="signed">Anyone, through links made for each viewer that expire</option>
              <option value="followers">Only my followers (signed in)</option>
            </select>
          </label>
          <p class="hint">Applies from your next broadcast.</p>
        </section>
        <section class="panel">
          <h2>Moderation</h2>
          <p class="hint">Reports, bans, banned words and the log of every action in your chat.</p>
          <a class="button" href={`#/moderate/${me.id}`}>Open moderator view</a>
        </section>
      </div>
    </div>
  );
}
