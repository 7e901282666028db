// Shared by the browser tests and the web benchmark: the page server and headless Chromium
// with WebGPU (Debian's chromium; on a machine without a GPU it runs on SwiftShader).
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { startServer } from "../../scripts/serve.mjs";

export const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

const CANDIDATES = [process.env.CHROMIUM, "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"];

export function chromiumPath() {
  const found = CANDIDATES.find((p) => p && existsSync(p));
  if (!found) throw new Error("no Chromium found: install Debian's chromium or set CHROMIUM");
  return found;
}

/**
 * The server (with the embed test page at /embed/, and `extra`'s URL prefix → folder mounts) and
 * a browser; `close()` ends both.
 */
export async function open({ extra = {} } = {}) {
  const server = await startServer({ port: 0, extra: { "/embed/": join(root, "tests", "browser", "embed"), ...extra } });
  const browser = await chromium.launch({
    executablePath: chromiumPath(),
    headless: true,
    args: ["--enable-unsafe-webgpu", "--no-sandbox", "--disable-dev-shm-usage"],
  });
  const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const origin = new URL(server.url).origin;
  const requests = [];
  page.on("request", (r) => requests.push(r.url()));
  const consoleLines = [];
  page.on("console", (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => consoleLines.push(`pageerror: ${e.message}`));
  return {
    server,
    browser,
    page,
    origin,
    requests,
    consoleLines,
    close: async () => {
      await browser.close();
      await server.close();
    },
  };
}

/** The native CLI built by cargo (the tests build it first). */
export function nativeCli() {
  for (const p of ["target/debug/weblora", "target/release/weblora"]) {
    if (existsSync(join(root, p))) return join(root, p);
  }
  throw new Error("target/debug/weblora is missing: run `cargo build -p weblora --bin weblora` first");
}

export const demoModel = join(root, "cache", "smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf");
