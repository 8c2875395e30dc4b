import { defineConfig } from "vite";

// The app is compiled into the `onair` binary and served at `/` and `/assets`; `npm run dev`
// proxies the API, chat included, and the chat WebSocket to a running `onair up` (one address).
export default defineConfig({
  esbuild: { jsx: "automatic", jsxImportSource: "preact" },
  build: { outDir: "dist", assetsDir: "assets", sourcemap: false, target: "es2022", chunkSizeWarningLimit: 700 },
  server: {
    proxy: {
      "/api": "http://127.0.0.1:8080",
      "/.well-known": "http://127.0.0.1:8080",
      "/ws": { target: "ws://127.0.0.1:8080", ws: true },
    },
  },
});
