import { defineConfig } from "vite";

// The app is served by the apiserver (`/` and `/assets`); `npm run dev` proxies the API to a
// running `onair up`.
export default defineConfig({
  esbuild: { jsx: "automatic", jsxImportSource: "preact" },
  build: { outDir: "dist", assetsDir: "assets", sourcemap: false, target: "es2022", chunkSizeWarningLimit: 700 },
  server: { proxy: { "/api": "http://127.0.0.1:8080", "/.well-known": "http://127.0.0.1:8080" } },
});
