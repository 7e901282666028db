// What the page's modules share: the page state, the events kept for tests (`window.weblora`),
// the error banner, the buttons' enabled states and the client.

import { $, buttonEl } from "/dom.js";
import { updateLibraryButtons } from "/library.js";

/** @typedef {import("/web/src/index.js").WebLoRA} WebLoRA */
/** @typedef {import("/web/src/index.js").ModelInfo} ModelInfo */
/** @typedef {import("/web/src/index.js").DataSummary} DataSummary */
/** @typedef {import("/web/src/index.js").StepEvent} StepEvent */
/** @typedef {import("/web/src/index.js").CheckpointInfo} CheckpointInfo */
/** @typedef {import("/web/src/index.js").Events["eval"]} EvalEvent */

/**
 * The run being shown: where it started, its length, the time spent training (not paused).
 * @typedef {{
 *   startStep: number | null,
 *   totalSteps: number | null,
 *   activeMs: number,
 *   since: number | null,
 *   lastStep: StepEvent | null,
 *   trainable: number | null,
 *   resumedFrom?: number,
 * }} RunView
 */

/** The run's events, for tests: `window.weblora.steps`, `.evals`, `.client`. */
export const hooks = {
  /** @type {StepEvent[]} */
  steps: [],
  /** @type {EvalEvent[]} */
  evals: [],
  /** @type {WebLoRA | null} */
  client: null,
  /** How often the page opened the GPU again after losing it, counted once all is restored. */
  reopened: 0,
  /** How often a run's adapter was kept in the library, counted once it is listed. */
  kept: 0,
};
Object.assign(window, { weblora: hooks });

export const state = {
  gpuOk: false,
  /** @type {WebLoRA | null} */
  client: null,
  /** @type {Promise<WebLoRA | null>} */
  clientReady: Promise.resolve(null),
  /** @type {ModelInfo | null} */
  model: null,
  modelLoading: false,
  /** Files picked or dropped for the model.
   * @type {File[] | null} */
  modelFiles: null,
  /** The dataset file chosen by the user; null means the sample.
   * @type {File | null} */
  dataFile: null,
  /** The dataset the worker holds.
   * @type {{ key: string, name: string, summary: DataSummary } | null} */
  data: null,
  /** Data loads queued or running. */
  dataLoads: 0,
  /** @type {Promise<void>} */
  dataChain: Promise.resolve(),
  dataToken: 0,
  /** Between Train and the run's start (the dataset may be read first). */
  starting: false,
  training: false,
  /** @type {"idle" | "starting" | "training" | "paused" | "stopping" | "stopped" | "done" | "failed"} */
  runState: "idle",
  hasAdapter: false,
  generating: false,
  /** The adapter library as the worker lists it.
   * @type {import("/web/src/index.js").LibraryEntry[]} */
  library: [],
  /** A library action (keep, import, compare, mix, download, delete) is under way. */
  libraryBusy: false,
  /** The GPU device is gone until the page opens it again. */
  gpuLost: false,
  exporting: false,
  /** @type {CheckpointInfo | null} */
  checkpoint: null,
  /** @type {RunView | null} */
  run: null,
};

/** @param {unknown} err */
export const messageOf = (err) =>
  err instanceof Error ? err.message : typeof err === "object" && err && "message" in err ? String(err.message) : String(err);

/**
 * Shows `err` in the one error banner, moved into the card of the action that failed.
 * @param {unknown} err
 * @param {Element | null} [card]
 */
export function showError(err, card) {
  if (/** @type {{ kind?: string }} */ (err)?.kind === "device-lost") return showGpuLost(messageOf(err));
  const banner = $("error");
  $("error-text").textContent = messageOf(err);
  if (card) card.insertBefore(banner, card.querySelector("h2")?.nextSibling ?? null);
  banner.hidden = false;
  const box = banner.getBoundingClientRect();
  if (box.top < 0 || box.bottom > window.innerHeight) banner.scrollIntoView({ block: "center", behavior: "smooth" });
}

/**
 * Says that the GPU device is gone and offers to open it again, with the run's last checkpoint
 * when this site's storage holds one of the loaded model and dataset.
 * @param {string} message
 */
export function showGpuLost(message) {
  const banner = $("gpu-lost");
  if (!banner.hidden) return;
  state.gpuLost = true;
  $("error").hidden = true;
  const said = message.charAt(0).toUpperCase() + message.slice(1);
  $("gpu-lost-text").textContent = `${said}. What you loaded and the run's checkpoints are kept in this page's storage.`;
  buttonEl("gpu-reopen").textContent = "Open the GPU again";
  banner.hidden = false;
  banner.scrollIntoView({ block: "center", behavior: "smooth" });
  updateButtons();
  state.client
    ?.checkpointInfo()
    .then((ck) => {
      if (ck && ck.model === state.model?.name && ck.data === state.data?.name) {
        buttonEl("gpu-reopen").textContent = ck.step < ck.totalSteps ? `Open the GPU again and resume from step ${ck.step}` : "Open the GPU again and restore the adapter";
      }
    })
    .catch(() => {});
}

export function hideError() {
  $("error").hidden = true;
}

/** Enables the buttons that can act now. */
export function updateButtons() {
  const ready = state.gpuOk && !!state.client && !state.gpuLost;
  const busy = state.starting || state.training || state.modelLoading;
  buttonEl("load-model").disabled = !state.gpuOk || state.gpuLost || busy;
  buttonEl("train").disabled = !ready || !state.model || busy;
  buttonEl("pause").disabled = !state.training || state.runState === "stopping";
  buttonEl("stop").disabled = !state.training || state.runState === "stopping";
  buttonEl("pause").textContent = state.runState === "paused" ? "Resume" : "Pause";
  buttonEl("generate").disabled = !ready || !state.model || state.modelLoading || state.generating;
  const canExport = ready && state.hasAdapter && !state.exporting && !state.modelLoading;
  buttonEl("download-peft").disabled = !canExport;
  buttonEl("download-gguf").disabled = !canExport || !state.model?.name?.toLowerCase().endsWith(".gguf");
  buttonEl("resume-checkpoint").disabled = !ready || busy;
  updateLibraryButtons();
}

/** The client, once WebGPU and the worker are up; throws the page's explanation when they are not. */
export async function needClient() {
  const client = await state.clientReady;
  if (!client) throw new Error($("webgpu-message").textContent || "WebGPU is not available in this browser.");
  return client;
}

/**
 * @param {string} text
 * @param {"" | "ok" | "bad" | "live"} [kind]
 */
export function setTrainStatus(text, kind = "") {
  const status = $("train-status");
  status.textContent = text;
  status.className = `status-text ${kind}`;
}
