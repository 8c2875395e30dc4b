// The built bundle is committed (so `onair up` needs no Node at run time). `dist/SOURCE_HASH`
// records a hash of everything the build reads; `--check` fails when the sources changed
// without a rebuild (`npm run build`). CI runs the check.
import { createHash } from "node:crypto";
import { readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const inputs = ["index.html", "vite.config.ts", "tsconfig.json", "package.json", "package-lock.json", "src"];

function files(p) {
  const full = join(root, p);
  if (statSync(full).isDirectory()) return readdirSync(full).sort().flatMap((f) => files(join(p, f)));
  return [p];
}

const hash = createHash("sha256");
for (const f of inputs.flatMap(files)) {
  hash.update(relative(root, join(root, f)));
  hash.update("\0");
  hash.update(readFileSync(join(root, f)));
  hash.update("\0");
}
const digest = hash.digest("hex");
const stamp = join(root, "dist", "SOURCE_HASH");
if (process.argv.includes("--check")) {
  let committed = "";
  try { committed = readFileSync(stamp, "utf8").trim(); } catch {}
  if (committed !== digest) {
    console.error("web/dist is stale: run `npm --prefix web ci && npm --prefix web run build` and commit web/dist");
    process.exit(1);
  }
  console.log("web/dist is fresh");
} else {
  writeFileSync(stamp, digest + "\n");
}
