import { useState } from "preact/hooks";
import { usePolling } from "../hooks";
import { get, type Category, type Page, type Stream, type User } from "../api";
import { compact, navigate, thumbnail, uptime } from "../util";

const REFRESH_MS = 10_000;

export function StreamCard({ s }: { s: Stream }) {
  // A restricted channel's thumbnail is behind its signed links, like its video: the card shows
  // none rather than ask for one the origin refuses.
  const thumb = (s.playback_access ?? "public") === "public" ? thumbnail(s.playback_url) : null;
  return (
    <a class="card" href={`#/watch/${s.id}`} data-stream={s.id}>
      <div class="thumb">
        {thumb ? <img src={thumb} alt="" loading="lazy" onError={(e) => (e.currentTarget.style.visibility = "hidden")} /> : null}
        {s.status === "live" ? <span class="badge live">LIVE</span> : <span class="badge">{s.status}</span>}
        <span class="badge viewers" aria-label={`${s.viewers} viewers`}>{compact(s.viewers)} watching</span>
      </div>
      <div class="meta">
        <div class="avatar" aria-hidden="true">{(s.streamer.display_name || s.streamer.username).slice(0, 1).toUpperCase()}</div>
        <div>
          <div class="title">{s.title}</div>
          <div class="sub">{s.streamer.display_name || s.streamer.username}</div>
          <div class="sub">
            {s.category} · {uptime(s.started_at)}
          </div>
        </div>
      </div>
    </a>
  );
}


export function Home({ me, query, category }: { me: User | null; query?: string; category?: string }) {
  const [lang, setLang] = useState("");
  const [tag, setTag] = useState("");
  const params = new URLSearchParams({ live: "true", limit: "24" });
  if (query) params.set("q", query);
  if (category) params.set("category", category);
  if (lang) params.set("language", lang);
  if (tag) params.set("tag", tag.trim().toLowerCase());
  const [streams, error] = usePolling(() => get<Page<Stream>>(`/api/streams/search?${params}`), [query, category, lang, tag], REFRESH_MS);
  const [categories] = usePolling(() => get<Category[]>("/api/categories"), [], REFRESH_MS);
  const [followed] = usePolling(
    () => (me ? get<Stream[]>("/api/users/me/following/live") : Promise.resolve([] as Stream[])),
    [me?.id],
    REFRESH_MS,
  );
  const followedList = followed ?? [];
  const heading = query ? `Results for “${query}”` : category ? `Live in ${categories?.find((c) => c.slug === category)?.name ?? category}` : "Live now";
  return (
    <div class="home">
      <aside class="side">
        {me && followedList.length > 0 ? (
          <section>
            <h2>Followed channels</h2>
            <ul class="plain">
              {followedList.map((s) => (
                <li key={s.id}>
                  <a href={`#/watch/${s.id}`}>
                    <span class="live-dot" /> {s.streamer.display_name || s.streamer.username}
                    <span class="count">{compact(s.viewers)}</span>
                  </a>
                </li>
              ))}
            </ul>
          </section>
        ) : null}
        <section>
          <h2>Categories</h2>
          <ul class="plain" data-testid="categories">
            {(categories ?? []).map((c) => (
              <li key={c.slug}>
                <a href={`#/category/${c.slug}`} aria-current={c.slug === category ? "page" : undefined}>
                  {c.name}
                  <span class="count">{c.live_streams} live</span>
                </a>
              </li>
            ))}
          </ul>
        </section>
      </aside>
      <section class="content">
        <div class="row">
          <h1>{heading}</h1>
          <div class="filters">
            <label>
              Language
              <select value={lang} onChange={(e) => setLang(e.currentTarget.value)}>
                <option value="">Any</option>
                <option value="en">English</option>
                <option value="de">German</option>
                <option value="es">Spanish</option>
                <option value="fr">French</option>
                <option value="ja">Japanese</option>
              </select>
            </label>
            <label>
              Tag
              <input value={tag} placeholder="speedrun" onChange={(e) => setTag(e.currentTarget.value)} />
            </label>
            {query || category ? (
              <button class="link" onClick={() => navigate("/")}>Clear</button>
            ) : null}
          </div>
        </div>
        {error ? <p class="error" role="alert">{error}</p> : null}
        <div class="grid" data-testid="live-now">
          {(streams?.items ?? []).map((s) => (
            <StreamCard key={s.id} s={s} />
          ))}
        </div>
        {streams && streams.items.length === 0 ? (
          <p class="empty">Nobody matching is live right now. {me ? <a href="#/dashboard">Start your own stream.</a> : null}</p>
        ) : null}
      </section>
    </div>
  );
}
