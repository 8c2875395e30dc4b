import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { maybeSignedIn, onUser, refresh, user, logout, type User } from "./api";
import { navigate } from "./util";
import { Home } from "./pages/Home";
import { Watch } from "./pages/Watch";
import { Dashboard } from "./pages/Dashboard";
import { AuthPage } from "./pages/Auth";
import { Profile } from "./pages/Profile";
import { Moderation } from "./pages/Moderation";
import { ClipPage, VodPage } from "./pages/Vod";
import "./styles.css";

function useRoute(): string[] {
  const read = () => (location.hash.replace(/^#\/?/, "") || "").split("/").filter(Boolean);
  const [route, setRoute] = useState(read);
  useEffect(() => {
    const on = () => setRoute(read());
    addEventListener("hashchange", on);
    return () => removeEventListener("hashchange", on);
  }, []);
  return route;
}

function Header({ me }: { me: User | null }) {
  const [q, setQ] = useState("");
  return (
    <header class="top">
      <a class="brand" href="#/">
        <span class="dot" aria-hidden="true" />
        onair
      </a>
      <form
        class="search"
        role="search"
        onSubmit={(e) => {
          e.preventDefault();
          navigate(`/search/${encodeURIComponent(q.trim())}`);
        }}
      >
        <input aria-label="Search streams" placeholder="Search live streams" value={q} onInput={(e) => setQ(e.currentTarget.value)} />
      </form>
      <nav>
        {me ? (
          <>
            <a href="#/dashboard" class="button primary">Go live</a>
            <a href="#/profile" class="who" title="Your profile">{me.display_name || me.username}</a>
            <button class="link" onClick={() => logout().then(() => navigate("/"))}>Log out</button>
          </>
        ) : (
          <>
            <a href="#/login" class="button">Log in</a>
            <a href="#/register" class="button primary">Sign up</a>
          </>
        )}
      </nav>
    </header>
  );
}

function App() {
  const [me, setMe] = useState<User | null>(user());
  const [ready, setReady] = useState(false);
  const route = useRoute();
  useEffect(() => {
    const off = onUser(setMe);
    if (maybeSignedIn()) refresh().finally(() => setReady(true));
    else setReady(true);
    return () => {
      off();
    };
  }, []);
  if (!ready) return <div class="boot" aria-busy="true" />;
  const [page, arg] = route;
  let body;
  switch (page) {
    case "watch":
      body = <Watch key={arg} streamId={arg} me={me} />;
      break;
    case "vod":
      body = <VodPage key={arg} vodId={arg} me={me} />;
      break;
    case "clip":
      body = <ClipPage key={arg} clipId={arg} me={me} />;
      break;
    case "dashboard":
      body = me ? <Dashboard me={me} /> : <AuthPage mode="login" next="/dashboard" />;
      break;
    case "login":
    case "register":
      body = <AuthPage mode={page} next="/dashboard" />;
      break;
    case "profile":
      body = me ? <Profile me={me} /> : <AuthPage mode="login" next="/profile" />;
      break;
    case "moderate":
      body = me ? <Moderation me={me} channelId={arg} /> : <AuthPage mode="login" next={`/moderate/${arg}`} />;
      break;
    case "search":
      body = <Home me={me} query={decodeURIComponent(arg ?? "")} />;
      break;
    case "category":
      body = <Home me={me} category={arg} />;
      break;
    default:
      body = <Home me={me} />;
  }
  return (
    <>
      <Header me={me} />
      <main>{body}</main>
    </>
  );
}

render(<App />, document.getElementById("app")!);
