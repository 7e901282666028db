// Files in and out of the page: dropped files and folders, and downloads of Blobs.

/**
 * Downloads `blob` as a file `name`; returns its blob: URL (revoke it when done).
 * @param {Blob} blob
 * @param {string} name
 */
export function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  return url;
}

/**
 * All files under dropped items, walking into folders.
 * @param {DataTransfer} dataTransfer
 * @returns {Promise<File[]>}
 */
export async function droppedFiles(dataTransfer) {
  const entries = [...dataTransfer.items].map((item) => item.webkitGetAsEntry?.()).filter(Boolean);
  if (!entries.length) return [...dataTransfer.files];
  /** @type {File[]} */
  const files = [];
  /** @param {FileSystemEntry} entry */
  const walk = async (entry) => {
    if (entry.isFile) {
      const fileEntry = /** @type {FileSystemFileEntry} */ (entry);
      files.push(await new Promise((resolve, reject) => fileEntry.file(resolve, reject)));
    } else if (entry.isDirectory) {
      const reader = /** @type {FileSystemDirectoryEntry} */ (entry).createReader();
      for (;;) {
        /** @type {FileSystemEntry[]} */
        const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
        if (!batch.length) break;
        for (const child of batch) await walk(child);
      }
    }
  };
  for (const entry of entries) await walk(entry);
  return files;
}

/**
 * Makes `zone` accept dropped files (and folders): `onFiles(files)`, or `onError(err)`.
 * @param {HTMLElement} zone
 * @param {(files: File[]) => void} onFiles
 * @param {(err: unknown) => void} onError
 */
export function dropZone(zone, onFiles, onError) {
  zone.addEventListener("dragover", (e) => {
    e.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", async (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    try {
      const files = await droppedFiles(e.dataTransfer);
      if (files.length) onFiles(files);
    } catch (err) {
      onError(err);
    }
  });
}
