// Verifies onair's signed playback URLs at the edge (njs), so the edge caches one copy of each
// stream for every viewer and refuses forged or expired links without asking the origin.
//
// A link is `/hls/{stream}/t/{kid}.{expires}.{viewer}.{signature}/…`; the signature is
// HMAC-SHA256 under the key named `kid`, over `{kid}.{expires}.{viewer}/hls/{stream}/`, in
// unpadded base64url (crates/playback-token states the format; this is its second reader).
// Keys come from the environment (`env ONAIR_PLAYBACK_KEYS;` in nginx.conf), `kid:secret,…`
// with base64 secrets, the same list the apiserver signs with: the config file holds no secret.
const crypto = require("crypto");

const TOKEN = /^\/hls\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\/t\/([A-Za-z0-9_-]{1,16})\.(0|[1-9][0-9]{0,11})\.([A-Za-z0-9_-]{8,64})\.([A-Za-z0-9_-]{43})\/./;

let keys = null;
function keyring() {
  if (keys) return keys;
  keys = {};
  const spec = process.env.ONAIR_PLAYBACK_KEYS || "";
  spec.split(",").forEach((item) => {
    const at = item.indexOf(":");
    if (at < 1) return;
    const kid = item.slice(0, at).trim();
    const secret = item.slice(at + 1).trim().replace(/-/g, "+").replace(/_/g, "/");
    keys[kid] = Buffer.from(secret, "base64");
  });
  return keys;
}

// Compares in time independent of where the strings differ.
function same(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

// `1` when the request's link is valid now, `0` otherwise (used by `js_set $playback_ok`).
function verify(r) {
  const m = TOKEN.exec(r.uri);
  if (!m) return "0";
  const stream = m[1], kid = m[2], expires = m[3], viewer = m[4], signature = m[5];
  const secret = keyring()[kid];
  if (!secret) return "0";
  if (Number(expires) <= Math.floor(Date.now() / 1000)) return "0";
  const text = `${kid}.${expires}.${viewer}/hls/${stream}/`;
  const expected = crypto.createHmac("sha256", secret).update(text).digest("base64url");
  return same(expected, signature) ? "1" : "0";
}

export default { verify };
