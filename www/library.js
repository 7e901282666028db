// 7. Your adapters: the library kept in this site's storage across reloads. A finished or
// stopped run keeps its adapter here (named after the dataset); PEFT adapters come in from files,
// a folder, a URL or a Hugging Face repo id. Checked adapters (1–4) answer the prompt of "Try
// it" beside the base model, from one decoder over the base; two or more mix into a new one
// (PEFT's `cat` combination). Each can be downloaded as PEFT files or deleted.

import { $, buttonEl, el, inputEl, textareaEl } from "/dom.js";
import { saveBlob } from "/files.js";
import { hideError, hooks, messageOf, needClient, showError, state, updateButtons } from "/page.js";
import { fmtBytes } from "/render.js";

/** The most adapters answered side by side. */
const MAX_COMPARED = 4;

/** The run whose adapter was kept last, so that a run resumed after a lost GPU keeps it under the same name. */
let kept = { model: "", data: "", name: "" };

/** @returns {HTMLInputElement[]} the checked adapters' boxes, in the list's order */
function checkedBoxes() {
  return [...document.querySelectorAll("#library-list input.pick:checked")].map((b) => /** @type {HTMLInputElement} */ (b));
}

/** The names of the checked adapters. */
export function checkedNames() {
  return checkedBoxes().map((b) => b.value);
}

/** `base`, or `base-2`, `base-3`… whichever the library does not hold yet. */
function freeName(base) {
  const taken = new Set(state.library.map((a) => a.name));
  const stem = base.replace(/[\\/\u0000-\u001f]/g, "-").slice(0, 56) || "adapter";
  if (!taken.has(stem)) return stem;
  for (let i = 2; ; i++) if (!taken.has(`${stem}-${i}`)) return `${stem}-${i}`;
}

/** One line on what an adapter is: rank, alpha, targets, DoRA, size; or why it did not load. */
function describe(/** @type {import("/web/src/index.js").LibraryEntry} */ a) {
  if (a.error) return `${fmtBytes(a.bytes)} · ${a.error}`;
  if (!a.loaded) return `${fmtBytes(a.bytes)} · loads with the model`;
  const targets = a.targets?.length === 7 ? "all linear" : (a.targets ?? []).join(", ");
  return [`r ${a.r}`, `α ${a.alpha}`, targets, a.dora && "DoRA", fmtBytes(a.bytes)].filter(Boolean).join(" · ");
}

/** Reads the library from the worker and lists it, keeping what was checked. */
export async function refreshLibrary() {
  const client = await needClient();
  const checked = new Set(checkedNames());
  state.library = await client.listAdapters();
  const list = $("library-list");
  list.replaceChildren(
    ...state.library.map((a) => {
      const row = el("li", "library-row");
      row.dataset.name = a.name;
      const pick = el("input", "pick");
      pick.type = "checkbox";
      pick.value = a.name;
      pick.checked = checked.has(a.name) && a.loaded;
      pick.disabled = !a.loaded;
      pick.addEventListener("change", updateButtons);
      const label = el("label", "library-name");
      label.append(pick, " ", el("span", null, a.name));
      const weight = el("input", "weight small-number");
      weight.type = "number";
      weight.step = "0.1";
      weight.value = "1";
      weight.title = `${a.name}'s weight in a mix`;
      const weightLabel = el("label", "muted small");
      weightLabel.append("weight ", weight);
      const download = el("button", "small-button", "Download");
      download.type = "button";
      download.addEventListener("click", () => downloadAdapter(a.name));
      const remove = el("button", "small-button", "Delete");
      remove.type = "button";
      remove.addEventListener("click", () => deleteAdapter(a.name));
      row.append(label, el("span", `muted small${a.error ? " bad" : ""}`, describe(a)), weightLabel, download, remove);
      return row;
    }),
  );
  $("library-empty").hidden = state.library.length > 0;
  updateButtons();
}

/**
 * Runs `fn` as the library's one action at a time, with errors shown in its card; then lists the
 * library again, unless `changes` says the action leaves it as it was.
 * @param {() => Promise<void>} fn
 * @param {{ changes?: boolean }} [how]
 */
async function act(fn, { changes = true } = {}) {
  hideError();
  state.libraryBusy = true;
  updateButtons();
  try {
    await fn();
  } catch (err) {
    showError(err, $("library-card"));
  } finally {
    state.libraryBusy = false;
    if (changes) await refreshLibrary().catch(() => {});
    else updateButtons();
  }
}

/** Keeps the adapter of the run that just ended, named after its dataset. */
export function keepTrained() {
  const model = state.model?.name ?? "";
  const data = state.data?.name ?? "";
  const again = state.run?.resumedFrom != null && kept.model === model && kept.data === data;
  return act(async () => {
    const client = await needClient();
    const name = again ? kept.name : freeName(data.replace(/\.[^.]*$/, ""));
    await client.saveAdapter(name);
    kept = { model, data, name };
    $("library-status").textContent = `Kept the trained adapter as “${name}”.`;
  }).then(() => {
    hooks.kept++;
  });
}

/**
 * Imports a PEFT adapter, named as typed in or after its folder or repo.
 * @param {File[] | string} source its files, or its folder's URL or Hugging Face repo id
 */
function importAdapter(source) {
  return act(async () => {
    const client = await needClient();
    const name = inputEl("adapter-name").value.trim();
    const info = await client.loadAdapter(source, { name: name || undefined });
    $("library-status").textContent = `Imported “${info.name}” (r ${info.r}, ${info.targets.length} targets).`;
  });
}

/** Imports a PEFT adapter from picked files or a folder. @param {File[]} files */
export const importFiles = (files) => importAdapter(files);

/** Imports a PEFT adapter from the URL or repo id typed in. */
export function importUrl() {
  const url = inputEl("adapter-url").value.trim();
  if (!url) {
    showError("Type a Hugging Face repo id (owner/name) or the URL of an adapter folder first.", $("library-card"));
    return Promise.resolve();
  }
  return importAdapter(url);
}

/** Answers the prompt with the base model and each checked adapter, side by side. */
export function compare() {
  const prompt = textareaEl("prompt").value.trim();
  const maxNewTokens = Number(inputEl("max-new-tokens").value);
  const names = checkedNames();
  if (!prompt) {
    showError("Write a prompt in “Try it” first.", $("library-card"));
    return Promise.resolve();
  }
  const box = $("compare-answers");
  box.removeAttribute("data-done");
  const columns = [null, ...names].map((name) => {
    const fig = el("figure", "answer");
    fig.dataset.adapter = name ?? "";
    const text = el("div", "answer-text muted", "Generating…");
    fig.append(el("figcaption", null, name ?? "Base model"), text);
    return fig;
  });
  box.replaceChildren(...columns);
  box.style.setProperty("--columns", String(columns.length));
  box.hidden = false;
  state.generating = true;
  return act(async () => {
    try {
      const client = await needClient();
      const answers = await client.compare(prompt, [null, ...names], { maxNewTokens });
      answers.forEach((a, i) => {
        const text = /** @type {HTMLElement} */ (columns[i].querySelector(".answer-text"));
        text.textContent = a.text || "(no text)";
        text.classList.remove("muted");
      });
      box.setAttribute("data-done", "true");
    } catch (err) {
      for (const c of columns) c.querySelector(".answer-text")?.replaceChildren(`Failed: ${messageOf(err)}`);
      throw err;
    } finally {
      state.generating = false;
    }
  }, { changes: false });
}

/** Mixes the checked adapters with their weights into a new adapter. */
export function mix() {
  const parts = checkedBoxes().map((b) => {
    const weight = /** @type {HTMLInputElement} */ (b.closest("li")?.querySelector("input.weight")).valueAsNumber;
    return { name: b.value, weight };
  });
  const bad = parts.find((p) => !Number.isFinite(p.weight));
  if (bad) {
    showError(`${bad.name}: its weight must be a number.`, $("library-card"));
    return Promise.resolve();
  }
  return act(async () => {
    const client = await needClient();
    const name = inputEl("mix-name").value.trim() || freeName(`mix-${parts.map((p) => p.name).join("-")}`);
    const info = await client.mix(parts, name);
    $("library-status").textContent = `Mixed ${parts.map((p) => `${p.name} × ${p.weight}`).join(" + ")} into “${info.name}” (r ${info.r}).`;
  });
}

/** @param {string} name */
function downloadAdapter(name) {
  return act(async () => {
    const client = await needClient();
    const files = await client.adapterFiles(name);
    for (const [file, blob] of Object.entries(files)) setTimeout(() => URL.revokeObjectURL(saveBlob(blob, file)), 60_000);
  }, { changes: false });
}

/** @param {string} name */
function deleteAdapter(name) {
  if (!window.confirm(`Delete the adapter “${name}” from this browser? Its files are gone unless you downloaded them.`)) return Promise.resolve();
  return act(async () => {
    const client = await needClient();
    await client.deleteAdapter(name);
    $("library-status").textContent = `Deleted “${name}”.`;
  });
}

/** The library's buttons: which can act now. */
export function updateLibraryButtons() {
  const ready = state.gpuOk && !!state.client && !state.gpuLost && !!state.model && !state.modelLoading;
  const free = ready && !state.libraryBusy && !state.generating;
  const n = checkedNames().length;
  buttonEl("compare").disabled = !free || n < 1 || n > MAX_COMPARED;
  buttonEl("mix").disabled = !free || n < 2;
  buttonEl("import-adapter").disabled = !free;
  for (const id of ["adapter-files", "adapter-folder"]) inputEl(id).disabled = !free;
  $("library-picked").textContent = n > MAX_COMPARED ? `${n} checked: compare takes up to ${MAX_COMPARED}.` : `${n} checked.`;
}
