// Serves the WebLoRA page on 127.0.0.1 with a strict Content Security Policy: the page (www/),
// the npm package and its wasm build (web/), the demo model (cache/smollm2/) and the sample
// data (data/). `node scripts/serve.mjs [--port N]`; tests import `startServer`.
import { createReadStream, promises as fs } from "node:fs";
import { createServer } from "node:http";
import { dirname, extname, join, normalize, sep } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

/** The policy: own-origin scripts (and wasm compilation), no inline code, no plug-ins; model
 * downloads may reach the HTTPS host the user names. */
export const CSP = [
  "default-src 'self'",
  "script-src 'self' 'wasm-unsafe-eval'",
  "style-src 'self'",
  "img-src 'self' data: blob:",
  "connect-src 'self' https:",
  "worker-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".jsonl": "application/jsonl",
  ".wasm": "application/wasm",
  ".ts": "text/plain; charset=utf-8",
  ".png": "image/png",
  ".svg": "image/svg+xml",
};

/** URL prefix → folder, longest first. */
function mounts(extra) {
  return [
    ...Object.entries(extra),
    ["/web/", join(root, "web")],
    ["/models/", join(root, "cache", "smollm2")],
    ["/data/", join(root, "data")],
    ["/", join(root, "www")],
  ];
}

function resolvePath(url, table) {
  const path = decodeURIComponent(new URL(url, "http://localhost").pathname);
  for (const [prefix, dir] of table) {
    if (!path.startsWith(prefix)) continue;
    let rest = path.slice(prefix.length);
    if (rest === "" || rest.endsWith("/")) rest += "index.html";
    const file = normalize(join(dir, rest));
    if (file !== dir && !file.startsWith(dir + sep)) return null;
    return file;
  }
  return null;
}

/** Starts the server; resolves to `{ url, close }`. `extra` mounts more folders (tests). */
export function startServer({ port = 8080, host = "127.0.0.1", extra = {} } = {}) {
  const table = mounts(extra);
  const server = createServer(async (req, res) => {
    const headers = {
      "Content-Security-Policy": CSP,
      "X-Content-Type-Options": "nosniff",
      "Referrer-Policy": "no-referrer",
      "Cache-Control": "no-cache",
    };
    const file = req.method === "GET" || req.method === "HEAD" ? resolvePath(req.url, table) : null;
    let stat = null;
    try {
      stat = file && (await fs.stat(file));
    } catch {}
    if (!stat || !stat.isFile()) {
      res.writeHead(404, { ...headers, "Content-Type": "text/plain" });
      res.end("not found\n");
      return;
    }
    headers["Content-Type"] = TYPES[extname(file)] ?? "application/octet-stream";
    headers["Content-Length"] = stat.size;
    res.writeHead(200, headers);
    if (req.method === "HEAD") return res.end();
    createReadStream(file).pipe(res);
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      const { port: actual } = server.address();
      resolve({ url: `http://${host}:${actual}/`, close: () => new Promise((r) => server.close(r)) });
    });
  });
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const i = process.argv.indexOf("--port");
  const port = i > 0 ? Number(process.argv[i + 1]) : Number(process.env.PORT ?? 8080);
  const { url } = await startServer({ port });
  console.log(`WebLoRA is at ${url} (the demo model and the sample data are pre-selected); Ctrl-C stops it.`);
}
