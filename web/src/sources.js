// Where model bytes come from: a URL (fetched as a stream, cached in the origin private file
// system so a reload reads it from disk) or local files. Every source is a ReadableStream of
// chunks with its length when known; nothing here holds a whole file.

const CACHE_DIR = "weblora-models";

async function cacheKey(url) {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(url));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function cacheDir() {
  if (!navigator.storage?.getDirectory) return null;
  try {
    const root = await navigator.storage.getDirectory();
    return await root.getDirectoryHandle(CACHE_DIR, { create: true });
  } catch {
    return null;
  }
}

/** A file that a cached download left complete, or null. */
async function cachedFile(dir, key) {
  try {
    await dir.getFileHandle(`${key}.ok`);
    return await (await dir.getFileHandle(key)).getFile();
  } catch {
    return null;
  }
}

/** A sink that writes chunks to an OPFS file as they pass, and marks it complete at the end. */
async function cacheWriter(dir, key) {
  const handle = await dir.getFileHandle(key, { create: true });
  try {
    await dir.removeEntry(`${key}.ok`);
  } catch {}
  if (handle.createSyncAccessHandle) {
    const access = await handle.createSyncAccessHandle();
    access.truncate(0);
    let at = 0;
    return {
      write: async (chunk) => {
        at += access.write(chunk, { at });
      },
      close: async () => {
        access.flush();
        access.close();
        await dir.getFileHandle(`${key}.ok`, { create: true });
      },
      abort: async () => access.close(),
    };
  }
  const w = await handle.createWritable();
  return {
    write: (chunk) => w.write(chunk),
    close: async () => {
      await w.close();
      await dir.getFileHandle(`${key}.ok`, { create: true });
    },
    abort: () => w.abort(),
  };
}

/**
 * Opens `url` as `{ stream, total, cached }`. With `cache`, a complete earlier download is read
 * from disk; otherwise the response is written to disk as it streams through. `optional`
 * returns null on 404 instead of failing.
 */
export async function openUrl(url, { cache = true, optional = false } = {}) {
  const dir = cache ? await cacheDir() : null;
  const key = dir ? await cacheKey(url) : null;
  if (dir) {
    const file = await cachedFile(dir, key);
    if (file) return { stream: file.stream(), total: file.size, cached: true };
  }
  let resp;
  try {
    resp = await fetch(url, { credentials: "omit" });
  } catch (e) {
    throw new Error(`${url}: the download failed (${e.message}); check the address and the network`);
  }
  if (optional && resp.status === 404) return null;
  if (!resp.ok) throw new Error(`${url}: the server answered HTTP ${resp.status} ${resp.statusText}`);
  const total = Number(resp.headers.get("content-length")) || null;
  if (!dir || !resp.body) return { stream: resp.body, total, cached: false };
  const writer = await cacheWriter(dir, key);
  const stream = resp.body.pipeThrough(
    new TransformStream({
      async transform(chunk, ctrl) {
        await writer.write(chunk);
        ctrl.enqueue(chunk);
      },
      async flush() {
        await writer.close();
      },
    }),
  );
  return { stream, total, cached: false };
}

/** The text of a small file at `url`, or null when optional and missing. */
export async function fetchText(url, opts) {
  const src = await openUrl(url, opts);
  if (!src) return null;
  return await new Response(src.stream).text();
}

/** Hands each chunk of `stream` to `feed`, and reports bytes done through `progress`. */
export async function pump(stream, total, feed, progress) {
  const reader = stream.getReader();
  let loaded = 0;
  let last = 0;
  progress(0, total);
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    feed(value);
    loaded += value.byteLength;
    const now = performance.now();
    if (now - last > 100) {
      last = now;
      progress(loaded, total);
    }
  }
  progress(loaded, total ?? loaded);
  return loaded;
}
