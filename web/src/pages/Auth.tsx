import { useState } from "preact/hooks";
import { login, register, type ApiError } from "../api";
import { navigate } from "../util";

export function AuthPage({ mode, next }: { mode: "login" | "register"; next: string }) {
  const [name, setName] = useState("");
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  const signup = mode === "register";
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      if (signup) await register(name.trim(), email.trim(), password);
      else await login(name.trim(), password);
      navigate(next);
    } catch (err) {
      setError(err as ApiError);
    } finally {
      setBusy(false);
    }
  };
  const fieldError = (f: string) => (error?.field === f ? <span class="field-error">{error.message}</span> : null);
  return (
    <div class="auth">
      <form class="panel form" onSubmit={submit} aria-labelledby="auth-title">
        <h1 id="auth-title">{signup ? "Create your account" : "Welcome back"}</h1>
        <label>
          {signup ? "Username" : "Username or email"}
          <input name="username" autoComplete="username" required value={name} onInput={(e) => setName(e.currentTarget.value)} aria-invalid={error?.field === "username"} />
          {fieldError("username")}
        </label>
        {signup ? (
          <label>
            Email
            <input name="email" type="email" autoComplete="email" required value={email} onInput={(e) => setEmail(e.currentTarget.value)} aria-invalid={error?.field === "email"} />
            {fieldError("email")}
          </label>
        ) : null}
        <label>
          Password
          <input
            name="password"
            type="password"
            autoComplete={signup ? "new-password" : "current-password"}
            minLength={signup ? 10 : undefined}
            required
            value={password}
            onInput={(e) => setPassword(e.currentTarget.value)}
            aria-invalid={error?.field === "password"}
          />
          {fieldError("password")}
        </label>
        {error && !error.field ? <p class="error" role="alert">{error.message}</p> : null}
        <button class="primary" type="submit" disabled={busy}>{signup ? "Sign up" : "Log in"}</button>
        <p class="hint">
          {signup ? <>Have an account? <a href="#/login">Log in</a></> : <>New here? <a href="#/register">Create an account</a></>}
        </p>
      </form>
    </div>
  );
}
