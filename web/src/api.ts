// The API client: the access token lives in memory only; the refresh token is an httpOnly
// cookie the browser sends to /api/users/* (so a reload signs back in, and scripts never see it).

export interface User {
  id: string;
  username: string;
  display_name: string;
  bio: string;
  avatar_url: string | null;
  email?: string;
  role: string;
  tier?: string;
  record_broadcasts?: boolean;
  record_renditions?: "all" | "top_and_lowest";
  playback_access?: PlaybackAccess;
}

export type PlaybackAccess = "public" | "signed" | "followers";

// Where a viewer plays a stream from, in order (POST /api/streams/{id}/playback): delivery
// bases (CDNs) first, the origin last.
export interface PlaybackSource {
  name: string;
  url: string;
  dvr_url?: string;
}

export interface PlaybackSources {
  sources: PlaybackSource[];
  expires_at?: string;
}

export interface Stream {
  id: string;
  streamer: { id: string; username: string; display_name: string; avatar_url: string | null };
  title: string;
  category: string;
  tags: string[];
  language: string;
  quality: string;
  status: "starting" | "live" | "ending" | "ended" | "failed";
  viewers: number;
  peak_viewers: number;
  created_at: string;
  started_at: string | null;
  ended_at: string | null;
  playback_url: string | null;
  dvr_url?: string;
  playback_access?: PlaybackAccess;
}

export interface Vod {
  id: string;
  stream_id: string;
  streamer: { id: string; username: string; display_name: string; avatar_url: string | null };
  title: string;
  category: string;
  duration_secs: number;
  renditions: string[];
  discontinuities: number;
  bytes: number;
  // Absent when this viewer may not play it (a followers-only channel's, for anyone else).
  playback_url: string | null;
  playback_access: PlaybackAccess;
  thumbnail_url: string | null;
  recorded_at: string;
  ended_at: string | null;
  created_at: string;
  expires_at: string;
  peak_viewers: number;
  unique_viewers: number;
}

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

export interface Category {
  slug: string;
  name: string;
  live_streams: number;
  viewers: number;
}

export interface ApiError {
  status: number;
  code: string;
  message: string;
  field?: string;
}

type Listener = (u: User | null) => void;

let accessToken: string | null = null;
let currentUser: User | null = null;
const listeners = new Set<Listener>();
let refreshing: Promise<boolean> | null = null;

export function user(): User | null {
  return currentUser;
}

export function token(): string | null {
  return accessToken;
}

export function onUser(l: Listener): () => void {
  listeners.add(l);
  return () => listeners.delete(l);
}

// Whether a refresh cookie may exist: saves a failing (and console-logged) refresh call on
// every page load of a visitor who never signed in. Not a secret: the cookie is the session.
const SIGNED_IN = "onair.signedIn";

export function maybeSignedIn(): boolean {
  return localStorage.getItem(SIGNED_IN) === "1";
}

function setSession(t: string | null, u: User | null) {
  if (u) localStorage.setItem(SIGNED_IN, "1");
  else localStorage.removeItem(SIGNED_IN);
  accessToken = t;
  currentUser = u;
  listeners.forEach((l) => l(u));
}

async function parseError(res: Response): Promise<ApiError> {
  try {
    const body = await res.json();
    return { status: res.status, ...body.error };
  } catch {
    return { status: res.status, code: "unavailable", message: `the server answered ${res.status}` };
  }
}

/** Exchange the refresh cookie for a new session; one at a time. */
export function refresh(): Promise<boolean> {
  refreshing ??= (async () => {
    try {
      const res = await fetch("/api/users/refresh", { method: "POST", credentials: "same-origin" });
      if (!res.ok) {
        setSession(null, null);
        return false;
      }
      const s = await res.json();
      setSession(s.access_token, s.user);
      return true;
    } catch {
      return false;
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

// Every route, chat included, is on the page's own origin: the Ingress (Kubernetes) or `onair up`
// routes chat paths to the chat gateway, so the app needs no second address.
export async function request<T>(method: string, url: string, body?: unknown): Promise<T> {
  const send = () => {
    const headers: Record<string, string> = {};
    if (body !== undefined) headers["content-type"] = "application/json";
    if (accessToken) headers["authorization"] = `Bearer ${accessToken}`;
    return fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
    });
  };
  const sentToken = accessToken;
  let res = await send();
  // A token that is no longer valid: refresh it and ask again. When the session cannot be
  // refreshed it is gone, and the request goes again as no one (routes open to anyone answer;
  // the others say 401 missing_token).
  if (res.status === 401 && sentToken) {
    await refresh();
    res = await send();
  }
  if (!res.ok) throw await parseError(res);
  if (res.status === 204 || res.status === 202) return undefined as T;
  return (await res.json()) as T;
}

export const get = <T>(url: string) => request<T>("GET", url);
export const post = <T>(url: string, body?: unknown) => request<T>("POST", url, body ?? {});

export async function login(loginName: string, password: string): Promise<User> {
  const s = await post<{ access_token: string; user: User }>("/api/users/login", { login: loginName, password });
  setSession(s.access_token, s.user);
  return s.user;
}

export async function register(username: string, email: string, password: string): Promise<User> {
  const s = await post<{ access_token: string; user: User }>("/api/users/register", { username, email, password });
  setSession(s.access_token, s.user);
  return s.user;
}

export async function logout(): Promise<void> {
  try {
    await fetch("/api/users/logout", { method: "POST", credentials: "same-origin" });
  } finally {
    setSession(null, null);
  }
}

export function updateUser(u: User) {
  setSession(accessToken, u);
}

export interface ClientConfig {
  ingest_url: string;
}

let config: Promise<ClientConfig> | null = null;
export function clientConfig(): Promise<ClientConfig> {
  config ??= get<ClientConfig>("/api/config");
  return config;
}

// This tab's viewer session id: heartbeats count it, and the playback sources are ordered (and
// signed) for it.
export function sessionId(): string {
  let id = sessionStorage.getItem("onair.session");
  if (!id) {
    id = crypto.randomUUID().replace(/-/g, "");
    sessionStorage.setItem("onair.session", id);
  }
  return id;
}

// Where this viewer plays `stream` from. A refusal stands (a followers-only channel, a viewer
// not signed in); when the API cannot answer, a public stream still plays from its own URL.
export async function playbackSources(stream: Stream): Promise<PlaybackSources> {
  try {
    return await post<PlaybackSources>(`/api/streams/${stream.id}/playback`, { session_id: sessionId() });
  } catch (e) {
    const status = (e as ApiError).status ?? 0;
    const publicStream = (stream.playback_access ?? "public") === "public";
    if ((status > 0 && status < 500 && status !== 429) || !publicStream || !stream.playback_url) throw e;
    return { sources: [{ name: "origin", url: stream.playback_url, dvr_url: stream.dvr_url }] };
  }
}

export function errorText(e: unknown): string {
  const err = e as ApiError;
  return err?.message ?? String(e);
}
