// 1. Model: where the base model comes from (the demo model, a URL or repo id, local files),
// its download progress, and its facts once loaded.

import { hideCheckpoint } from "/checkpoint.js";
import { loadData, setDataPending } from "/data.js";
import { $, inputEl } from "/dom.js";
import { refreshLibrary } from "/library.js";
import { hideError, messageOf, needClient, showError, state, updateButtons } from "/page.js";
import { fmtBytes, modelFacts } from "/render.js";

const DEMO_MODEL = "/models/SmolLM2-135M-Instruct.Q4_1.gguf";

/** @typedef {"demo" | "url" | "files"} SourceKind */

/** @param {SourceKind} kind */
function sourceRadio(kind) {
  const radio = document.querySelector(`input[name="model-source"][value="${kind}"]`);
  if (!(radio instanceof HTMLInputElement)) throw new Error(`the page has no model source ${kind}`);
  return radio;
}

/** @returns {SourceKind} */
function modelSourceKind() {
  return /** @type {SourceKind[]} */ (["demo", "url", "files"]).find((kind) => sourceRadio(kind).checked) ?? "demo";
}

/** @param {SourceKind} kind */
export function selectModelSource(kind) {
  sourceRadio(kind).checked = true;
}

/** The chosen model: the demo model's or a typed URL, or the chosen files. */
function modelSource() {
  const kind = modelSourceKind();
  if (kind === "demo") return DEMO_MODEL;
  if (kind === "url") {
    const url = inputEl("model-url").value.trim();
    if (!url) throw new Error("Enter a Hugging Face repo id (owner/name), a resolve/main/ URL or a .gguf URL.");
    return url;
  }
  if (!state.modelFiles?.length) throw new Error("Choose a .gguf file or a model folder first.");
  return state.modelFiles;
}

/** @param {File[]} files */
export function setModelFiles(files) {
  state.modelFiles = files;
  selectModelSource("files");
  const gguf = files.find((f) => f.name.toLowerCase().endsWith(".gguf"));
  const total = files.reduce((s, f) => s + f.size, 0);
  $("model-files-chosen").textContent = gguf ? `${gguf.name} · ${fmtBytes(gguf.size)}` : `${files.length} files · ${fmtBytes(total)}`;
}

/** @type {Map<string, import("/web/src/index.js").ProgressEvent>} */
const progressFiles = new Map();

/** @param {import("/web/src/index.js").ProgressEvent} p */
export function onProgress(p) {
  progressFiles.set(p.file, p);
  let loaded = 0;
  let total = 0;
  let known = true;
  for (const f of progressFiles.values()) {
    loaded += f.loaded;
    if (f.total == null) known = false;
    else total += f.total;
  }
  const bar = $("model-progress-bar");
  if (known && total > 0) {
    bar.style.width = `${Math.min(100, (100 * loaded) / total).toFixed(1)}%`;
    bar.classList.remove("indeterminate");
  } else {
    bar.classList.add("indeterminate");
  }
  const done = known && loaded >= total;
  $("model-progress-text").textContent = done
    ? `${fmtBytes(loaded)} read · preparing the weights on the GPU…`
    : `${fmtBytes(loaded)}${known ? ` of ${fmtBytes(total)}` : ""} · ${p.file}`;
}

/** Loads the chosen model, then reads the dataset with its tokenizer. */
export async function loadModel() {
  const card = $("model-card");
  hideError();
  let source;
  try {
    source = modelSource();
  } catch (err) {
    showError(err, card);
    return;
  }
  state.modelLoading = true;
  state.model = null;
  state.hasAdapter = false;
  state.data = null;
  progressFiles.clear();
  $("model-info").hidden = true;
  $("model-progress").hidden = false;
  $("model-progress-bar").style.width = "0%";
  $("model-progress-text").textContent = "Starting…";
  setModelStatus("Loading…");
  setDataPending("The dataset is read again once the model is loaded.");
  hideCheckpoint();
  updateButtons();
  const started = performance.now();
  try {
    const client = await needClient();
    const info = await client.loadModel(source);
    state.model = info;
    const seconds = (performance.now() - started) / 1000;
    setModelStatus(`Loaded ${info.name} in ${seconds.toFixed(1)} s`, "ok");
    $("fig-memory").textContent = fmtBytes(info.gpuBytes);
    const dl = $("model-info");
    dl.replaceChildren(...modelFacts(info));
    dl.hidden = false;
    await refreshLibrary();
  } catch (err) {
    setModelStatus(`Failed: ${messageOf(err)}`, "bad");
    showError(err, card);
  } finally {
    state.modelLoading = false;
    $("model-progress").hidden = true;
    updateButtons();
  }
  if (state.model) loadData();
}

/**
 * @param {string} text
 * @param {"" | "ok" | "bad"} [kind]
 */
function setModelStatus(text, kind = "") {
  const status = $("model-status");
  status.textContent = text;
  status.className = `status-text ${kind}`.trim();
}
