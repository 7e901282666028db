// The WebLoRA page: pick a model and a dataset, train a LoRA adapter with a live loss chart, compare
// answers with and without it, download it. All the work happens in the `weblora` package's worker;
// the page's modules only wire the page to it: model.js, data.js, settings-form.js (built from the
// engine's table of settings), train.js, checkpoint.js, generate.js, library.js (the adapters
// kept across reloads), recover.js (after a lost GPU), over page.js's shared state.
// `window.weblora` keeps the run's events for tests.

import { WebLoRA, checkWebGPU } from "/web/src/index.js";
import { chooseDataFile, onDataSettingChange } from "/data.js";
import { $, buttonEl, canvasEl, inputEl, textareaEl } from "/dom.js";
import { dropZone } from "/files.js";
import { download, generate } from "/generate.js";
import { compare, importFiles, importUrl, mix, refreshLibrary } from "/library.js";
import { loadModel, onProgress, selectModelSource, setModelFiles } from "/model.js";
import { hideError, hooks, messageOf, showError, showGpuLost, state, updateButtons } from "/page.js";
import { reopenGpu } from "/recover.js";
import { buildForm, formPending, formReady } from "/settings-form.js";
import { onEval, onStatus, onStep, resumeCheckpoint, scheduleChart, showMemoryPlan, stopRun, togglePause, train, updateFigures } from "/train.js";

/**
 * @param {"pending" | "ok" | "missing"} kind
 * @param {string} text
 */
function setGpuStatus(kind, text) {
  $("gpu-status").dataset.state = kind;
  $("gpu-text").textContent = text;
}

/**
 * The engine's options from the page's address: `?kernels=tiled|cpu|auto` and
 * `?limits=webgpu-default|adapter` (to try the page as a device with WebGPU's default limits
 * runs it).
 * @returns {{ kernels?: "auto" | "tiled" | "cpu", limits?: "adapter" | "webgpu-default" }}
 */
function engineOptions() {
  const query = new URLSearchParams(location.search);
  const kernels = query.get("kernels");
  const limits = query.get("limits");
  return {
    ...(kernels === "auto" || kernels === "tiled" || kernels === "cpu" ? { kernels } : {}),
    ...(limits === "adapter" || limits === "webgpu-default" ? { limits } : {}),
  };
}

/** Opens WebGPU and the worker, then builds the settings form from the engine's table. */
async function openClient() {
  const status = await checkWebGPU();
  if (!status.ok) {
    $("webgpu-missing").hidden = false;
    $("webgpu-message").textContent = status.message;
    setGpuStatus("missing", "WebGPU missing");
    formPending("The settings come from WebLoRA's engine, which needs WebGPU.");
    updateButtons();
    return null;
  }
  state.gpuOk = true;
  setGpuStatus("pending", "Opening the GPU…");
  updateButtons();
  try {
    const client = await WebLoRA.create(engineOptions());
    // Opened again after a lost GPU, the page keeps its form and what is in it.
    if (!formReady()) {
      buildForm(client.settingsTable, { onDataChange: onDataSettingChange });
      // The memory plan follows the training settings (a data setting reads the data again first).
      for (const section of document.querySelectorAll("[data-section]")) section.addEventListener("change", () => showMemoryPlan());
    }
    state.client = client;
    hooks.client = client;
    client.on("progress", onProgress);
    client.on("status", onStatus);
    client.on("step", onStep);
    client.on("eval", onEval);
    client.on("error", (e) => showError(e.message, state.training ? $("train-card") : null));
    client.on("deviceLost", (e) => showGpuLost(e.message));
    refreshLibrary().catch((e) => showError(e, $("library-card")));
    const g = client.gpu;
    setGpuStatus("ok", `WebGPU ready · ${[g?.name, g?.backend, g?.kernels && `${g.kernels} kernels`].filter(Boolean).join(" · ") || "GPU"}`);
    return client;
  } catch (err) {
    state.gpuOk = false;
    $("webgpu-missing").hidden = false;
    $("webgpu-title").textContent = "WebLoRA could not start on this GPU, so this page cannot train.";
    $("webgpu-message").textContent = messageOf(err);
    setGpuStatus("missing", "The GPU could not be opened");
    formPending("The settings come from WebLoRA's engine, which could not start.");
    return null;
  } finally {
    updateButtons();
  }
}

function bind() {
  buttonEl("error-dismiss").addEventListener("click", hideError);
  buttonEl("gpu-reopen").addEventListener("click", () => reopenGpu(openClient));

  buttonEl("load-model").addEventListener("click", loadModel);
  inputEl("model-url").addEventListener("input", () => selectModelSource("url"));
  inputEl("model-url").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !buttonEl("load-model").disabled) loadModel();
  });
  for (const id of ["model-file", "model-folder"]) {
    const picker = inputEl(id);
    picker.addEventListener("change", () => {
      if (picker.files?.length) setModelFiles([...picker.files]);
    });
  }
  dropZone($("model-drop"), setModelFiles, (err) => showError(err, $("model-card")));

  const dataPicker = inputEl("data-file");
  dataPicker.addEventListener("change", () => {
    const file = dataPicker.files?.[0];
    if (file) chooseDataFile(file);
    dataPicker.value = "";
  });
  dropZone($("data-drop"), (files) => chooseDataFile(files[0]), (err) => showError(err, $("data-card")));
  buttonEl("use-sample").addEventListener("click", () => chooseDataFile(null));

  buttonEl("train").addEventListener("click", () => train(false));
  buttonEl("pause").addEventListener("click", togglePause);
  buttonEl("stop").addEventListener("click", stopRun);
  buttonEl("resume-checkpoint").addEventListener("click", resumeCheckpoint);

  buttonEl("generate").addEventListener("click", generate);
  textareaEl("prompt").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey) && !buttonEl("generate").disabled) generate();
  });
  buttonEl("download-peft").addEventListener("click", () => download("peft"));
  buttonEl("download-gguf").addEventListener("click", () => download("gguf"));

  buttonEl("compare").addEventListener("click", compare);
  buttonEl("mix").addEventListener("click", mix);
  buttonEl("import-adapter").addEventListener("click", importUrl);
  inputEl("adapter-url").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !buttonEl("import-adapter").disabled) importUrl();
  });
  for (const id of ["adapter-files", "adapter-folder"]) {
    const picker = inputEl(id);
    picker.addEventListener("change", () => {
      if (picker.files?.length) importFiles([...picker.files]);
      picker.value = "";
    });
  }
  dropZone($("library-drop"), importFiles, (err) => showError(err, $("library-card")));

  // A file dropped outside a drop zone must not navigate away from the run.
  for (const type of ["dragover", "drop"]) document.addEventListener(type, (e) => e.preventDefault());

  new ResizeObserver(scheduleChart).observe(canvasEl("loss-chart"));
  window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", scheduleChart);
  setInterval(() => {
    if (state.training && state.run?.since != null) updateFigures();
  }, 1000);
}

bind();
updateButtons();
scheduleChart();
state.clientReady = openClient();
