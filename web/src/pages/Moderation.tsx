import { useEffect, useState } from "preact/hooks";
import { errorText, get, request, type Page, type Stream, type User } from "../api";

interface Report { id: string; stream_id: string; message_id: string; reason: string; created_at: string; author_id: string | null; author_name: string | null; text: string | null }
interface Ban { user_id: string; username: string; until: string | null; reason: string; created_at: string }
interface Filter { id: string; pattern: string; is_regex: boolean; created_at: string }
interface Audit { id: string; actor_id: string; action: string; target_user_id: string | null; reason: string; created_at: string }

export function Moderation({ me, channelId }: { me: User; channelId: string }) {
  const [reports, setReports] = useState<Report[]>([]);
  const [bans, setBans] = useState<Ban[]>([]);
  const [filters, setFilters] = useState<Filter[]>([]);
  const [log, setLog] = useState<Audit[]>([]);
  const [latest, setLatest] = useState<Stream | null>(null);
  const [pattern, setPattern] = useState("");
  const [regex, setRegex] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const chat = <T,>(method: string, path: string, body?: unknown) => request<T>(method, path, body);
  const load = () =>
    Promise.all([
      chat<Report[]>("GET", `/api/channels/${channelId}/chat-reports`).then(setReports),
      chat<Ban[]>("GET", `/api/channels/${channelId}/bans`).then(setBans),
      chat<Filter[]>("GET", `/api/channels/${channelId}/chat-filters`).then(setFilters),
      chat<Audit[]>("GET", `/api/channels/${channelId}/moderation-log`).then(setLog),
      get<Page<Stream>>(`/api/users/${channelId}/streams?limit=1`).then((p) => setLatest(p.items[0] ?? null)),
    ])
      .then(() => setError(null))
      .catch((e) => setError(errorText(e)));
  useEffect(() => {
    load();
    const t = setInterval(load, 10_000);
    return () => clearInterval(t);
  }, [channelId, me.id]);
  const act = (streamId: string, action: Record<string, unknown>) =>
    chat("POST", `/api/streams/${streamId}/chat/moderation`, action).then(load).catch((e) => setError(errorText(e)));
  return (
    <div class="moderation">
      <div class="row">
        <h1>Moderator view</h1>
        {latest ? <a class="button" href={`#/watch/${latest.id}`}>Open the channel's chat</a> : null}
      </div>
      {error ? <p class="error" role="alert">{error}</p> : null}
      <div class="mod-grid">
        <section class="panel">
          <h2>Reported messages <span class="count">{reports.length}</span></h2>
          {reports.length === 0 ? <p class="hint">No open reports.</p> : null}
          <ul class="rows">
            {reports.map((r) => (
              <li key={r.id}>
                <div><b>{r.author_name ?? "unknown"}</b>: {r.text ?? <i>message not stored yet</i>}</div>
                <div class="sub">“{r.reason}” · {new Date(r.created_at).toLocaleString()}</div>
                <div class="actions">
                  <button onClick={() => act(r.stream_id, { action: "delete", message_id: r.message_id, reason: r.reason })}>Delete</button>
                  {r.author_id ? <button onClick={() => act(r.stream_id, { action: "timeout", user_id: r.author_id, seconds: 600, reason: r.reason })}>Time out 10 min</button> : null}
                  {r.author_id ? <button class="danger" onClick={() => act(r.stream_id, { action: "ban", user_id: r.author_id, reason: r.reason })}>Ban</button> : null}
                </div>
              </li>
            ))}
          </ul>
        </section>
        <section class="panel">
          <h2>Banned and timed out <span class="count">{bans.length}</span></h2>
          {bans.length === 0 ? <p class="hint">Nobody is banned.</p> : null}
          <ul class="rows">
            {bans.map((b) => (
              <li key={b.user_id}>
                <b>{b.username}</b> <span class="sub">{b.until ? `until ${new Date(b.until).toLocaleString()}` : "banned"} {b.reason ? `· ${b.reason}` : ""}</span>
                {latest ? <button onClick={() => act(latest.id, { action: "unban", user_id: b.user_id })}>Lift</button> : null}
              </li>
            ))}
          </ul>
        </section>
        <section class="panel">
          <h2>Banned words</h2>
          <form
            class="inline"
            onSubmit={(e) => {
              e.preventDefault();
              chat("POST", `/api/channels/${channelId}/chat-filters`, { pattern, is_regex: regex })
                .then(() => (setPattern(""), load()))
                .catch((err) => setError(errorText(err)));
            }}
          >
            <input aria-label="Word or pattern" placeholder="word or pattern" value={pattern} maxLength={200} required onInput={(e) => setPattern(e.currentTarget.value)} />
            <label class="check">
              <input type="checkbox" checked={regex} onChange={(e) => setRegex(e.currentTarget.checked)} /> regex
            </label>
            <button class="primary" type="submit">Add</button>
          </form>
          <ul class="rows">
            {filters.map((f) => (
              <li key={f.id}>
                <code>{f.pattern}</code> {f.is_regex ? <span class="tag">regex</span> : null}
                <button onClick={() => chat("DELETE", `/api/channels/${channelId}/chat-filters/${f.id}`).then(load)}>Remove</button>
              </li>
            ))}
          </ul>
        </section>
        <section class="panel">
          <h2>Audit log</h2>
          <ul class="rows log">
            {log.map((a) => (
              <li key={a.id}>
                <span class="tag">{a.action}</span> <span class="sub">{new Date(a.created_at).toLocaleString()}</span> {a.reason ? `· ${a.reason}` : ""}
              </li>
            ))}
          </ul>
        </section>
      </div>
    </div>
  );
}
