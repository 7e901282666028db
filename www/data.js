// 2. Dataset: the chosen file (or the sample), read by the worker with the loaded model's
// tokenizer and the form's data settings, and its summary.

import { checkCheckpoint } from "/checkpoint.js";
import { $, el } from "/dom.js";
import { messageOf, needClient, setTrainStatus, showError, state, updateButtons } from "/page.js";
import { fmtBytes, summaryView } from "/render.js";
import { dataSettings } from "/settings-form.js";
import { showMemoryPlan } from "/train.js";

const SAMPLE_DATA = { url: "/data/pirate_chat.jsonl", name: "pirate_chat.jsonl", note: "sample · 40 short chats answered like a pirate" };

const dataName = () => (state.dataFile ? state.dataFile.name : SAMPLE_DATA.name);

/**
 * What identifies a dataset read: the file and the settings it was read with.
 * @param {import("/web/src/index.js").DataSettings} settings
 */
function dataKey(settings) {
  const file = state.dataFile;
  return JSON.stringify({ name: dataName(), size: file?.size, modified: file?.lastModified, settings });
}

/** @param {string} text */
export function setDataPending(text) {
  const summary = $("data-summary");
  summary.removeAttribute("data-ready");
  summary.replaceChildren(el("p", "muted", text));
}

/**
 * Chooses the dataset: a file, or null for the sample.
 * @param {File | null} file
 */
export function chooseDataFile(file) {
  state.dataFile = file;
  $("data-name").textContent = file ? file.name : SAMPLE_DATA.name;
  $("data-note").textContent = file ? fmtBytes(file.size) : SAMPLE_DATA.note;
  $("use-sample").hidden = !file;
  loadData();
}

/**
 * Reads the chosen dataset with the current data settings. Loads queue one after another, and
 * only the latest one updates the page, so the worker always ends up holding what the page shows.
 * @returns {Promise<void>}
 */
export function loadData() {
  const card = $("data-card");
  if (!state.model) {
    setDataPending("The dataset is read with the model's tokenizer, once a model is loaded.");
    return Promise.resolve();
  }
  if (state.training) {
    setDataPending("The dataset is read when this run ends, at the next Train.");
    return Promise.resolve();
  }
  let settings;
  try {
    settings = dataSettings();
  } catch (err) {
    showError(err, card);
    return Promise.resolve();
  }
  const token = ++state.dataToken;
  const file = state.dataFile;
  const name = dataName();
  const key = dataKey(settings);
  state.dataLoads++;
  setDataPending(`Reading ${name}…`);
  const job = state.dataChain.then(async () => {
    if (token !== state.dataToken) return;
    try {
      const client = await needClient();
      /** @type {Blob | string} */
      let data = file;
      if (!data) {
        const res = await fetch(SAMPLE_DATA.url);
        if (!res.ok) throw new Error(`could not fetch the sample dataset (${res.status} ${res.statusText})`);
        data = await res.text();
      }
      const summary = await client.loadData(data, settings, name);
      state.data = { key, name, summary };
      // A new dataset ends the engine's run; its adapter was kept in the library when it ended.
      if (state.hasAdapter) {
        state.hasAdapter = false;
        if (!state.training) setTrainStatus("New dataset read. The last run's adapter is kept in “Your adapters”; train again for a new one.");
      }
      if (token === state.dataToken) {
        renderSummary(summary);
        checkCheckpoint();
        showMemoryPlan();
      }
    } catch (err) {
      state.data = null;
      if (token === state.dataToken) {
        setDataPending(`Could not read ${name}: ${messageOf(err)}`);
        showError(err, card);
      }
    }
  });
  state.dataChain = job.finally(() => {
    state.dataLoads--;
    updateButtons();
  });
  return state.dataChain;
}

/** Data settings changed: read the data again now, or at the next Train if that would drop a trained adapter. */
export function onDataSettingChange() {
  if (!state.model || !(state.training || state.hasAdapter)) {
    loadData();
    return;
  }
  const box = $("data-summary");
  box.querySelector(".pending-note")?.remove();
  const note = el("p", "pending-note", "Changed settings: the dataset is read again when you next train. ");
  note.append(el("span", "muted", "Reading it now would drop the adapter you trained."));
  box.prepend(note);
}

/** Makes sure the worker holds the chosen dataset with the current settings; throws if it cannot. */
export async function ensureData() {
  await state.dataChain;
  const key = dataKey(dataSettings());
  if (state.data?.key !== key) await loadData();
  if (state.data?.key !== key) throw new Error("The dataset is not loaded: fix the problem shown above it, then train again.");
}

/** @param {import("/web/src/index.js").DataSummary} s */
function renderSummary(s) {
  const box = $("data-summary");
  box.replaceChildren(...summaryView(s));
  box.setAttribute("data-ready", "true");
}
