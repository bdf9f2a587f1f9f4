import { copyFileSync, mkdirSync } from "node:fs";
import { resolve } from "node:path";
import preact from "@preact/preset-vite";
import { defineConfig } from "vite";

// The build goes into the Python package, which serves it at / (and Swagger UI's pinned assets at /api-docs).
const pkg = resolve(import.meta.dirname, "../src/chat4all/api/static");

function swaggerAssets() {
  return {
    name: "swagger-ui-assets",
    closeBundle() {
      const from = resolve(import.meta.dirname, "node_modules/swagger-ui-dist");
      mkdirSync(resolve(pkg, "swagger-ui"), { recursive: true });
      for (const file of ["swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png", "LICENSE"])
        copyFileSync(resolve(from, file), resolve(pkg, "swagger-ui", file));
    },
  };
}

export default defineConfig({
  plugins: [preact(), swaggerAssets()],
  build: { outDir: resolve(pkg, "web"), emptyOutDir: true, assetsDir: "assets", sourcemap: false },
  worker: { format: "es" },
  server: { proxy: { "/v1": { target: "http://127.0.0.1:8080", ws: true }, "/v2": { target: "http://127.0.0.1:8080", ws: true }, "/openapi.json": "http://127.0.0.1:8080" } },
});
