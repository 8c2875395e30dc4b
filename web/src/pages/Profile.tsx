import { useState } from "preact/hooks";
import { request, updateUser, type ApiError, type User } from "../api";

export function Profile({ me }: { me: User }) {
  const [displayName, setDisplayName] = useState(me.display_name);
  const [bio, setBio] = useState(me.bio);
  const [current, setCurrent] = useState("");
  const [next, setNext] = useState("");
  const [msg, setMsg] = useState<{ ok: boolean; text: string; field?: string } | null>(null);
  const save = async (e: Event) => {
    e.preventDefault();
    const body: Record<string, string> = { display_name: displayName, bio };
    if (next) Object.assign(body, { current_password: current, new_password: next });
    try {
      const u = await request<User>("PATCH", "/api/users/me", body);
      updateUser(u);
      setCurrent("");
      setNext("");
      setMsg({ ok: true, text: "Saved." });
    } catch (err) {
      const a = err as ApiError;
      setMsg({ ok: false, text: a.message, field: a.field });
    }
  };
  return (
    <div class="auth">
      <form class="panel form" onSubmit={save}>
        <h1>Your profile</h1>
        <p class="hint">@{me.username}{me.email ? ` · ${me.email}` : ""}</p>
        <label>
          Display name
          <input value={displayName} maxLength={50} onInput={(e) => setDisplayName(e.currentTarget.value)} aria-invalid={msg?.field === "display_name"} />
        </label>
        <label>
          Bio
          <textarea value={bio} maxLength={500} rows={4} onInput={(e) => setBio(e.currentTarget.value)} />
        </label>
        <fieldset>
          <legend>Change password</legend>
          <label>
            Current password
            <input type="password" autoComplete="current-password" value={current} onInput={(e) => setCurrent(e.currentTarget.value)} />
          </label>
          <label>
            New password
            <input type="password" autoComplete="new-password" minLength={10} value={next} onInput={(e) => setNext(e.currentTarget.value)} />
          </label>
        </fieldset>
        {msg ? <p class={msg.ok ? "ok" : "error"} role="status">{msg.text}</p> : null}
        <button class="primary" type="submit">Save</button>
      </form>
    </div>
  );
}
