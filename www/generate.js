// 5. Try it: the prompt answered by the base model and by base + adapter; 6. the adapter's
// downloads (PEFT files, a llama.cpp GGUF adapter).

import { $, el, inputEl, textareaEl } from "/dom.js";
import { saveBlob } from "/files.js";
import { hideError, messageOf, needClient, showError, state, updateButtons } from "/page.js";
import { fmtBytes } from "/render.js";

/** The most new tokens an answer may have, as the page's field allows. */
const MAX_NEW_TOKENS = 1024;

/**
 * @param {"answer-base" | "answer-adapter"} id
 * @param {string} text
 * @param {{ done?: boolean, muted?: boolean }} [how]
 */
function setAnswer(id, text, { done = false, muted = false } = {}) {
  const box = $(id);
  box.textContent = text;
  box.classList.toggle("muted", muted);
  if (done) box.setAttribute("data-done", "true");
  else box.removeAttribute("data-done");
}

/** Answers the prompt with the base model, then with the adapter when there is one. */
export async function generate() {
  const card = $("try-card");
  const prompt = textareaEl("prompt").value.trim();
  const maxNewTokens = Number(inputEl("max-new-tokens").value);
  hideError();
  if (!prompt) {
    showError("Write a prompt first.", card);
    return;
  }
  if (!Number.isInteger(maxNewTokens) || maxNewTokens < 1 || maxNewTokens > MAX_NEW_TOKENS) {
    showError(`New tokens: a whole number from 1 to ${MAX_NEW_TOKENS}.`, card);
    return;
  }
  state.generating = true;
  updateButtons();
  const withAdapter = state.hasAdapter;
  setAnswer("answer-base", "Generating…", { muted: true });
  setAnswer("answer-adapter", withAdapter ? "Waiting…" : "", { muted: true });
  /** @type {"answer-base" | "answer-adapter"} */
  let current = "answer-base";
  try {
    const client = await needClient();
    const base = await client.generate(prompt, { adapter: false, maxNewTokens });
    setAnswer("answer-base", base.text || "(no text)", { done: true });
    if (withAdapter) {
      current = "answer-adapter";
      setAnswer(current, "Generating…", { muted: true });
      const tuned = await client.generate(prompt, { adapter: true, maxNewTokens });
      setAnswer(current, tuned.text || "(no text)", { done: true });
    } else {
      setAnswer("answer-adapter", "No adapter yet: start training, then generate again.", { done: true, muted: true });
    }
  } catch (err) {
    setAnswer(current, `Failed: ${messageOf(err)}`, { muted: true });
    showError(err, card);
  } finally {
    state.generating = false;
    updateButtons();
  }
}

/**
 * Keeps links to the exported files, in case the browser held back a download.
 * @param {[name: string, blob: Blob, url: string][]} files
 */
function showLinks(files) {
  const box = $("download-links");
  for (const a of box.querySelectorAll("a")) URL.revokeObjectURL(a.href);
  box.replaceChildren(el("span", "muted", "Saved: "));
  files.forEach(([name, blob, url], i) => {
    const a = el("a", null, name);
    a.href = url;
    a.download = name;
    box.append(...(i ? [" · "] : []), a, el("span", "muted", ` (${fmtBytes(blob.size)})`));
  });
  box.hidden = false;
}

/**
 * Exports the adapter and downloads its files.
 * @param {"peft" | "gguf"} kind
 */
export async function download(kind) {
  const card = $("download-card");
  hideError();
  state.exporting = true;
  updateButtons();
  try {
    const client = await needClient();
    /** @type {[string, Blob][]} */
    let files;
    if (kind === "peft") {
      const peft = await client.exportPeft();
      files = [
        ["adapter_config.json", peft["adapter_config.json"]],
        ["adapter_model.safetensors", peft["adapter_model.safetensors"]],
      ];
    } else {
      files = [["adapter.gguf", await client.exportGguf()]];
    }
    showLinks(files.map(([name, blob]) => [name, blob, saveBlob(blob, name)]));
  } catch (err) {
    showError(err, card);
  } finally {
    state.exporting = false;
    updateButtons();
  }
}
