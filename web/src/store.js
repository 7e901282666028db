// Files in the origin's private storage (OPFS), written whole or not at all; shared by the run's
// checkpoint and the adapter library.

/** Writes a file whole or not at all: under a temporary name first, then renamed. */
export async function writeFile(dir, name, bytes) {
  const partial = `${name}.partial`;
  const handle = await dir.getFileHandle(partial, { create: true });
  if (handle.createSyncAccessHandle) {
    const access = await handle.createSyncAccessHandle();
    access.truncate(0);
    access.write(bytes, { at: 0 });
    access.flush();
    access.close();
  } else {
    const w = await handle.createWritable();
    await w.write(bytes);
    await w.close();
  }
  try {
    await dir.removeEntry(name);
  } catch {}
  await handle.move(name);
}

/** A file's bytes. */
export async function readFile(dir, name) {
  return new Uint8Array(await (await (await dir.getFileHandle(name)).getFile()).arrayBuffer());
}

/** The folder `name` at the top of the origin's private storage. */
export async function topDir(name, create) {
  const root = await navigator.storage.getDirectory();
  return root.getDirectoryHandle(name, { create });
}
