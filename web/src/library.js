// The adapter library's files, kept in the origin's private storage across reloads: one folder
// per adapter under weblora-adapters/, named as the adapter, with PEFT's two files and
// meta.json ({ name, added }). meta.json is written last, so a folder without it (a crash while
// writing) is not an adapter, and is cleared away.

import { readFile, topDir, writeFile } from "./store.js";

const LIBRARY_DIR = "weblora-adapters";
export const PEFT_FILES = ["adapter_config.json", "adapter_model.safetensors"];

/** Keeps an adapter's PEFT files (`{ "adapter_config.json", "adapter_model.safetensors" }`, bytes or text) as `name`. */
export async function storeAdapter(name, files) {
  const lib = await topDir(LIBRARY_DIR, true);
  try {
    await lib.removeEntry(name, { recursive: true });
  } catch {}
  const dir = await lib.getDirectoryHandle(name, { create: true });
  const bytes = (v) => (typeof v === "string" ? new TextEncoder().encode(v) : v);
  for (const f of PEFT_FILES) await writeFile(dir, f, bytes(files[f]));
  await writeFile(dir, "meta.json", bytes(JSON.stringify({ name, added: Date.now() })));
}

/** The kept adapters, oldest first: `{ name, added, bytes }`. */
export async function storedAdapters() {
  let lib;
  try {
    lib = await topDir(LIBRARY_DIR, false);
  } catch {
    return [];
  }
  const out = [];
  for await (const [folder, handle] of lib.entries()) {
    if (handle.kind !== "directory") continue;
    try {
      const meta = JSON.parse(new TextDecoder().decode(await readFile(handle, "meta.json")));
      let bytes = 0;
      for (const f of PEFT_FILES) bytes += (await (await handle.getFileHandle(f)).getFile()).size;
      out.push({ name: folder, added: meta.added ?? 0, bytes });
    } catch {
      await lib.removeEntry(folder, { recursive: true }).catch(() => {});
    }
  }
  return out.sort((a, b) => a.added - b.added);
}

/** A kept adapter's PEFT files, as bytes. */
export async function storedFiles(name) {
  const dir = await (await topDir(LIBRARY_DIR, false)).getDirectoryHandle(name);
  const files = {};
  for (const f of PEFT_FILES) files[f] = await readFile(dir, f);
  return files;
}

export async function removeAdapter(name) {
  try {
    await (await topDir(LIBRARY_DIR, false)).removeEntry(name, { recursive: true });
  } catch {}
}
