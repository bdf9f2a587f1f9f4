import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, readdirSync, readFileSync, statSync } from "node:fs";
import { relative, resolve } from "node:path";
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

// The build names the sources it was made from (a SHA-256 over web/src, index.html, the lockfile and
// this file), so a test can tell a committed build that is older than its sources
// (tests/api/test_web_served.py does the same sum).
function sourceDigest(): string {
  const root = import.meta.dirname;
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const path = resolve(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else files.push(relative(root, path).split("\\").join("/"));
    }
  };
  walk(resolve(root, "src"));
  files.push("index.html", "package-lock.json", "vite.config.ts");
  const hash = createHash("sha256");
  for (const file of files.sort()) hash.update(file).update("\0").update(readFileSync(resolve(root, file))).update("\0");
  return hash.digest("hex");
}

function sourceStamp() {
  return {
    name: "source-stamp",
    transformIndexHtml: (html: string) =>
      html.replace("</head>", `  <meta name="chat4all-web-source" content="${sourceDigest()}" />\n  </head>`),
  };
}

export default defineConfig({
  plugins: [preact(), swaggerAssets(), sourceStamp()],
  build: { outDir: resolve(pkg, "web"), emptyOutDir: true, assetsDir: "assets", sourcemap: false },
  worker: { format: "es" },
  server: { proxy: { "/v1": { target: "http://127.0.0.1:8080", ws: true }, "/v2": { target: "http://127.0.0.1:8080", ws: true }, "/openapi.json": "http://127.0.0.1:8080" } },
});
