import { useEffect, useState } from "preact/hooks";

/** Load now and every `everyMs` while mounted (and again when `deps` change); `reload()` loads
 * at once, e.g. after an action changed what the server holds. */
export function usePolling<T>(
  load: () => Promise<T>,
  deps: unknown[],
  everyMs: number,
): [T | null, string | null, () => void] {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [nonce, setNonce] = useState(0);
  useEffect(() => {
    let live = true;
    const tick = () =>
      load()
        .then((d) => live && (setData(d), setError(null)))
        .catch((e) => live && setError(e?.message ?? "could not load"));
    tick();
    const t = setInterval(tick, everyMs);
    return () => {
      live = false;
      clearInterval(t);
    };
  }, [...deps, nonce, everyMs]);
  return [data, error, () => setNonce((n) => n + 1)];
}
