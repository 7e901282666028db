// The WebLoRA page: pick a model and a dataset, train a LoRA adapter with a live loss chart, compare
// answers with and without it, download it. All the work happens in the `weblora` package's worker;
// this module only wires the page to it. `window.weblora` keeps the run's events for tests.

import { WebLoRA, checkWebGPU } from "/web/src/index.js";
import { drawLossChart } from "/chart.js";
import { dropZone, saveBlob } from "/files.js";
import { el, fmtBytes, fmtCount, fmtDuration, fmtInt, modelFacts, summaryView } from "/render.js";

const DEMO_MODEL = "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
const SAMPLE_DATA = { url: "/data/pirate_chat.jsonl", name: "pirate_chat.jsonl" };
const TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];
const DATA_INPUTS = ["seq-len", "train-on", "eval-split", "seed"];
const MAX_NEW_TOKENS = 48;
const CHECKPOINT_EVERY = 10;

const $ = (id) => document.getElementById(id);

const hooks = { steps: [], evals: [], client: null };
window.weblora = hooks;

const state = {
  gpuOk: false,
  client: null,
  clientReady: null, // Promise<WebLoRA>
  model: null, // ModelInfo once loaded
  modelLoading: false,
  modelFiles: null, // File[] picked or dropped
  dataFile: null, // File chosen by the user; null means the sample
  data: null, // { key, name, summary } of the dataset the worker holds
  dataLoads: 0, // data loads queued or running
  dataChain: Promise.resolve(),
  dataToken: 0,
  starting: false, // between Train and the run's start (the dataset may be read first)
  training: false,
  runState: "idle", // idle | training | paused | stopped | done | failed
  hasAdapter: false,
  generating: false,
  exporting: false,
  checkpoint: null,
  run: null, // { startStep, totalSteps, activeMs, since, lastStep, trainable }
};

// ---------------------------------------------------------------- small helpers

const messageOf = (err) => (err instanceof Error ? err.message : String(err?.message ?? err));

// ---------------------------------------------------------------- errors

/** Shows `err` in the one error banner, moved into the card of the action that failed. */
function showError(err, card) {
  const banner = $("error");
  $("error-text").textContent = messageOf(err);
  if (card) card.insertBefore(banner, card.querySelector("h2").nextSibling);
  banner.hidden = false;
  const box = banner.getBoundingClientRect();
  if (box.top < 0 || box.bottom > window.innerHeight) banner.scrollIntoView({ block: "center", behavior: "smooth" });
}

function hideError() {
  $("error").hidden = true;
}

// ---------------------------------------------------------------- buttons

function updateButtons() {
  const ready = state.gpuOk && !!state.client;
  const busy = state.starting || state.training || state.modelLoading;
  $("load-model").disabled = !state.gpuOk || busy;
  $("train").disabled = !ready || !state.model || busy;
  $("pause").disabled = !state.training || state.runState === "stopping";
  $("stop").disabled = !state.training || state.runState === "stopping";
  $("pause").textContent = state.runState === "paused" ? "Resume" : "Pause";
  $("generate").disabled = !ready || !state.model || state.modelLoading || state.generating;
  const canExport = ready && state.hasAdapter && !state.exporting && !state.modelLoading;
  $("download-peft").disabled = !canExport;
  $("download-gguf").disabled = !canExport || !state.model?.name?.toLowerCase().endsWith(".gguf");
  $("resume-checkpoint").disabled = !ready || busy;
}

// ---------------------------------------------------------------- WebGPU and the client

async function openClient() {
  const status = await checkWebGPU();
  if (!status.ok) {
    $("webgpu-missing").hidden = false;
    $("webgpu-message").textContent = status.message;
    setGpuStatus("missing", "WebGPU missing");
    updateButtons();
    return null;
  }
  state.gpuOk = true;
  setGpuStatus("pending", "Opening the GPU…");
  updateButtons();
  try {
    const client = await WebLoRA.create();
    state.client = client;
    hooks.client = client;
    listen(client);
    const g = client.gpu ?? {};
    setGpuStatus("ok", `WebGPU ready · ${[g.name, g.backend].filter(Boolean).join(" · ") || "GPU"}`);
    return client;
  } catch (err) {
    state.gpuOk = false;
    $("webgpu-missing").hidden = false;
    $("webgpu-title").textContent = "WebLoRA could not start on this GPU, so this page cannot train.";
    $("webgpu-message").textContent = messageOf(err);
    setGpuStatus("missing", "The GPU could not be opened");
    return null;
  } finally {
    updateButtons();
  }
}

function setGpuStatus(kind, text) {
  $("gpu-status").dataset.state = kind;
  $("gpu-text").textContent = text;
}

async function needClient() {
  const client = await state.clientReady;
  if (!client) throw new Error($("webgpu-message").textContent || "WebGPU is not available in this browser.");
  return client;
}

function listen(client) {
  client.on("progress", onProgress);
  client.on("status", onStatus);
  client.on("step", onStep);
  client.on("eval", onEval);
  client.on("error", (e) => showError(e.message, state.training ? $("train-card") : null));
}

// ---------------------------------------------------------------- 1. model

function modelSourceKind() {
  return document.querySelector('input[name="model-source"]:checked').value;
}

function selectModelSource(kind) {
  document.querySelector(`input[name="model-source"][value="${kind}"]`).checked = true;
}

function modelSource() {
  const kind = modelSourceKind();
  if (kind === "demo") return DEMO_MODEL;
  if (kind === "url") {
    const url = $("model-url").value.trim();
    if (!url) throw new Error("Enter a Hugging Face repo id (owner/name), a resolve/main/ URL or a .gguf URL.");
    return url;
  }
  if (!state.modelFiles?.length) throw new Error("Choose a .gguf file or a model folder first.");
  return state.modelFiles;
}

function setModelFiles(files) {
  state.modelFiles = files;
  selectModelSource("files");
  const gguf = files.find((f) => f.name.toLowerCase().endsWith(".gguf"));
  const total = files.reduce((s, f) => s + f.size, 0);
  $("model-files-chosen").textContent = gguf
    ? `${gguf.name} · ${fmtBytes(gguf.size)}`
    : `${files.length} files · ${fmtBytes(total)}`;
}

const progressFiles = new Map();

function onProgress(p) {
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

async function loadModel() {
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
  $("model-status").textContent = "Loading…";
  $("model-status").className = "status-text";
  setDataPending("The dataset is read again once the model is loaded.");
  hideCheckpoint();
  updateButtons();
  const started = performance.now();
  try {
    const client = await needClient();
    const info = await client.loadModel(source);
    state.model = info;
    const seconds = (performance.now() - started) / 1000;
    $("model-status").textContent = `Loaded ${info.name} in ${seconds.toFixed(1)} s`;
    $("model-status").className = "status-text ok";
    $("fig-memory").textContent = fmtBytes(info.gpuBytes);
    renderModelInfo(info);
  } catch (err) {
    $("model-status").textContent = `Failed: ${messageOf(err)}`;
    $("model-status").className = "status-text bad";
    showError(err, card);
  } finally {
    state.modelLoading = false;
    $("model-progress").hidden = true;
    updateButtons();
  }
  if (state.model) loadData();
}

function renderModelInfo(info) {
  const dl = $("model-info");
  dl.replaceChildren(...modelFacts(info));
  dl.hidden = false;
}

// ---------------------------------------------------------------- 2. dataset

function readNumber(id, { int = false, min = -Infinity, max = Infinity, optional = false } = {}) {
  const input = $(id);
  const label = document.querySelector(`label[for="${id}"]`)?.textContent ?? id;
  const raw = input.value.trim();
  input.removeAttribute("aria-invalid");
  let problem = null;
  const value = Number(raw);
  if (raw === "") {
    if (optional) return undefined;
    problem = "needs a value";
  } else if (!Number.isFinite(value)) problem = "is not a number";
  else if (int && !Number.isInteger(value)) problem = "must be a whole number";
  else if (value < min) problem = `must be at least ${min}`;
  else if (value > max) problem = `must be at most ${max}`;
  if (problem) {
    input.setAttribute("aria-invalid", "true");
    input.focus();
    throw new Error(`${label} ${problem}.`);
  }
  return value;
}

function dataSettings() {
  return {
    seqLen: readNumber("seq-len", { int: true, min: 8 }),
    trainOn: $("train-on").value,
    evalSplit: readNumber("eval-split", { min: 0, max: 0.9 }),
    seed: readNumber("seed", { int: true, min: 0 }),
  };
}

const dataName = () => (state.dataFile ? state.dataFile.name : SAMPLE_DATA.name);

function setDataPending(text) {
  const summary = $("data-summary");
  summary.removeAttribute("data-ready");
  summary.replaceChildren(el("p", "muted", text));
}

function chooseDataFile(file) {
  state.dataFile = file;
  $("data-name").textContent = file ? file.name : SAMPLE_DATA.name;
  $("data-note").textContent = file ? fmtBytes(file.size) : "sample · 40 short chats answered like a pirate";
  $("use-sample").hidden = !file;
  loadData();
}

/**
 * Reads the chosen dataset with the current data settings. Loads queue one after another, and
 * only the latest one updates the page, so the worker always ends up holding what the page shows.
 */
function loadData() {
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
  const key = JSON.stringify({ name, size: file?.size, modified: file?.lastModified, settings });
  state.dataLoads++;
  setDataPending(`Reading ${name}…`);
  const job = state.dataChain.then(async () => {
    if (token !== state.dataToken) return;
    try {
      const client = await needClient();
      let data = file;
      if (!data) {
        const res = await fetch(SAMPLE_DATA.url);
        if (!res.ok) throw new Error(`could not fetch the sample dataset (${res.status} ${res.statusText})`);
        data = await res.text();
      }
      const summary = await client.loadData(data, settings, name);
      state.data = { key, name, summary };
      // A new dataset ends the engine's run: the last adapter is gone.
      if (state.hasAdapter) {
        state.hasAdapter = false;
        if (!state.training) setTrainStatus("New dataset read: train again to get an adapter.");
      }
      if (token === state.dataToken) {
        renderSummary(summary);
        checkCheckpoint();
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
function onDataSettingChange() {
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
async function ensureData() {
  await state.dataChain;
  const settings = dataSettings();
  const file = state.dataFile;
  const key = JSON.stringify({ name: dataName(), size: file?.size, modified: file?.lastModified, settings });
  if (state.data?.key !== key) await loadData();
  if (state.data?.key !== key) throw new Error("The dataset is not loaded: fix the problem shown above it, then train again.");
}

function renderSummary(s) {
  const box = $("data-summary");
  box.replaceChildren(...summaryView(s));
  box.setAttribute("data-ready", "true");
}

// ---------------------------------------------------------------- 3. settings

function trainSettings() {
  const targets = TARGETS.filter((t) => document.querySelector(`input[name="target"][value="${t}"]`).checked);
  if (!targets.length) throw new Error("Choose at least one layer to adapt.");
  const settings = {
    rank: readNumber("rank", { int: true, min: 1, max: 1024 }),
    alpha: readNumber("alpha", { min: 0 }),
    dropout: readNumber("dropout", { min: 0, max: 0.99 }),
    targets: targets.length === TARGETS.length ? ["all-linear"] : targets,
    rslora: $("rslora").checked,
    lr: readNumber("lr", { min: 0 }),
    schedule: $("schedule").value,
    warmup: readNumber("warmup", { int: true, min: 0 }),
    epochs: readNumber("epochs", { int: true, min: 1 }),
    maxSteps: readNumber("max-steps", { int: true, min: 1, optional: true }),
    batchSize: readNumber("batch-size", { int: true, min: 1 }),
    gradAccum: readNumber("grad-accum", { int: true, min: 1 }),
    maxGradNorm: readNumber("max-grad-norm", { min: 0 }),
    weightDecay: readNumber("weight-decay", { min: 0 }),
    evalEvery: readNumber("eval-every", { int: true, min: 0 }),
    seed: readNumber("seed", { int: true, min: 0 }),
    recompute: $("recompute").checked,
  };
  if (settings.maxSteps === undefined) delete settings.maxSteps;
  return settings;
}

/** Puts saved settings back into the inputs (for resuming a checkpoint). */
function applySettings(s) {
  const set = (id, v) => {
    if (v !== undefined && v !== null) $(id).value = String(v);
  };
  set("rank", s.rank);
  set("alpha", s.alpha);
  set("dropout", s.dropout);
  set("lr", s.lr);
  set("schedule", s.schedule);
  set("warmup", s.warmup);
  set("epochs", s.epochs);
  $("max-steps").value = s.maxSteps ?? "";
  set("batch-size", s.batchSize);
  set("grad-accum", s.gradAccum);
  set("max-grad-norm", s.maxGradNorm);
  set("weight-decay", s.weightDecay);
  set("eval-every", s.evalEvery);
  set("seed", s.seed);
  if (s.rslora !== undefined) $("rslora").checked = !!s.rslora;
  if (s.recompute !== undefined) $("recompute").checked = !!s.recompute;
  if (s.targets) {
    const all = s.targets.includes("all-linear");
    for (const box of document.querySelectorAll('input[name="target"]')) box.checked = all || s.targets.includes(box.value);
  }
}

// ---------------------------------------------------------------- 4. train

function setTrainStatus(text, kind = "") {
  $("train-status").textContent = text;
  $("train-status").className = `status-text ${kind}`;
}

async function train(resume = false) {
  const card = $("train-card");
  hideError();
  let settings;
  try {
    settings = resume && state.checkpoint ? { ...trainSettings(), ...state.checkpoint.settings } : trainSettings();
  } catch (err) {
    showError(err, $("settings-card"));
    return;
  }
  state.starting = true;
  hideCheckpoint();
  updateButtons();
  setTrainStatus("Reading the dataset…");
  try {
    await ensureData();
  } catch (err) {
    state.runState = "failed";
    setTrainStatus(`Not started: ${messageOf(err)}`, "bad");
    showError(err, $("data-card"));
    return;
  } finally {
    state.starting = false;
    updateButtons();
  }
  state.training = true;
  state.runState = "starting";
  updateButtons();
  if (!resume) {
    hooks.steps.length = 0;
    hooks.evals.length = 0;
  }
  state.run = { startStep: null, totalSteps: null, activeMs: 0, since: null, lastStep: null, trainable: null };
  resetFigures();
  scheduleChart();
  setTrainStatus(resume ? "Restoring the checkpoint…" : "Starting: building the GPU pipelines…");
  try {
    const client = await needClient();
    await client.train(settings, { checkpointEvery: CHECKPOINT_EVERY, resume });
  } catch (err) {
    state.runState = "failed";
    setTrainStatus(`Failed: ${messageOf(err)}`, "bad");
    showError(err, card);
  } finally {
    pauseClock();
    state.training = false;
    updateButtons();
    updateFigures();
  }
  checkCheckpoint();
}

function pauseClock() {
  const run = state.run;
  if (run?.since != null) {
    run.activeMs += performance.now() - run.since;
    run.since = null;
  }
}

function activeSeconds() {
  const run = state.run;
  if (!run) return 0;
  return (run.activeMs + (run.since != null ? performance.now() - run.since : 0)) / 1000;
}

function onStatus(s) {
  const run = state.run ?? (state.run = { startStep: null, activeMs: 0, since: null, lastStep: null, trainable: null });
  run.totalSteps = s.totalSteps;
  if (s.trainableParameters != null) run.trainable = s.trainableParameters;
  const of = `step ${s.step} / ${s.totalSteps}`;
  switch (s.state) {
    case "resumed":
      run.resumedFrom = s.step;
      run.startStep = s.step;
      break;
    case "training":
      state.hasAdapter = true;
      state.runState = "training";
      if (run.startStep == null) run.startStep = s.step;
      if (run.since == null) run.since = performance.now();
      setTrainStatus(`Training — ${of}${run.resumedFrom ? ` (resumed from step ${run.resumedFrom})` : ""}`, "live");
      break;
    case "paused":
      state.runState = "paused";
      pauseClock();
      setTrainStatus(`Paused at ${of}`);
      break;
    case "stopped":
      state.runState = "stopped";
      pauseClock();
      setTrainStatus(`Stopped at ${of}. The adapter keeps what it learned.`);
      break;
    case "done":
      state.runState = "done";
      pauseClock();
      setTrainStatus(`Done — step ${s.step} / ${s.totalSteps} in ${fmtDuration(activeSeconds())}`, "ok");
      break;
  }
  updateButtons();
  updateFigures();
}

function onStep(e) {
  hooks.steps.push(e);
  const run = state.run;
  if (run) {
    run.lastStep = e;
    run.totalSteps = e.totalSteps;
  }
  if (state.runState === "training") setTrainStatus(`Training — step ${e.step} / ${e.totalSteps}`, "live");
  updateFigures();
  scheduleChart();
}

function onEval(e) {
  hooks.evals.push(e);
  updateFigures();
  scheduleChart();
}

function resetFigures() {
  for (const id of ["fig-step", "fig-loss", "fig-eval", "fig-speed", "fig-elapsed", "fig-eta", "fig-params"]) $(id).textContent = "–";
}

function updateFigures() {
  const run = state.run;
  if (!run) return;
  const last = run.lastStep;
  const total = run.totalSteps;
  if (last) {
    $("fig-step").textContent = `${last.step} / ${total}`;
    $("fig-loss").textContent = last.loss.toFixed(4);
    $("fig-speed").textContent = fmtInt(last.tokensPerSecond);
  } else if (total) {
    $("fig-step").textContent = `${run.startStep ?? 0} / ${total}`;
  }
  const lastEval = hooks.evals[hooks.evals.length - 1];
  if (lastEval) $("fig-eval").textContent = lastEval.loss.toFixed(4);
  const elapsed = activeSeconds();
  if (run.since != null || last) $("fig-elapsed").textContent = fmtDuration(elapsed);
  const done = last && run.startStep != null ? last.step - run.startStep : 0;
  if (done > 0 && total) {
    const remaining = Math.max(0, total - last.step);
    $("fig-eta").textContent = remaining === 0 ? "0:00" : state.training ? fmtDuration((elapsed / done) * remaining) : "–";
  }
  if (run.trainable) $("fig-params").textContent = fmtCount(run.trainable);
}

async function togglePause() {
  const client = state.client;
  if (!client || !state.training) return;
  try {
    if (state.runState === "paused") {
      await client.resume();
    } else {
      setTrainStatus("Pausing after this step…");
      await client.pause();
    }
  } catch (err) {
    showError(err, $("train-card"));
  }
}

async function stopRun() {
  const client = state.client;
  if (!client || !state.training) return;
  state.runState = "stopping";
  setTrainStatus("Stopping after this step…");
  updateButtons();
  try {
    await client.stop();
  } catch (err) {
    showError(err, $("train-card"));
  }
}

function hideCheckpoint() {
  state.checkpoint = null;
  $("checkpoint").hidden = true;
}

/** Offers to resume the checkpoint saved in this site's storage when it is of this model and dataset. */
async function checkCheckpoint() {
  const client = state.client;
  if (!client || !state.model || !state.data || state.training) return hideCheckpoint();
  let ck = null;
  try {
    ck = await client.checkpointInfo();
  } catch {
    ck = null;
  }
  const fits = ck && ck.model === state.model.name && ck.data === state.data.name && ck.step < ck.totalSteps;
  if (!fits || state.training) return hideCheckpoint();
  state.checkpoint = ck;
  $("checkpoint-text").textContent = `A saved run of ${ck.model} on ${ck.data} stopped at step ${ck.step} of ${ck.totalSteps}.`;
  $("resume-checkpoint").textContent = `Resume from step ${ck.step}`;
  $("checkpoint").hidden = false;
  updateButtons();
}

function resumeCheckpoint() {
  if (!state.checkpoint) return;
  applySettings(state.checkpoint.settings ?? {});
  train(true);
}

// ---------------------------------------------------------------- the chart

let chartQueued = false;

function scheduleChart() {
  if (chartQueued) return;
  chartQueued = true;
  requestAnimationFrame(() => {
    chartQueued = false;
    drawLossChart($("loss-chart"), hooks.steps, hooks.evals, state.run?.totalSteps ?? 0);
  });
}

// ---------------------------------------------------------------- 5. try it

function setAnswer(id, text, { done = false, muted = false } = {}) {
  const box = $(id);
  box.textContent = text;
  box.classList.toggle("muted", muted);
  if (done) box.setAttribute("data-done", "true");
  else box.removeAttribute("data-done");
}

async function generate() {
  const card = $("try-card");
  const prompt = $("prompt").value.trim();
  hideError();
  if (!prompt) {
    showError("Write a prompt first.", card);
    return;
  }
  state.generating = true;
  updateButtons();
  const withAdapter = state.hasAdapter;
  setAnswer("answer-base", "Generating…", { muted: true });
  setAnswer("answer-adapter", withAdapter ? "Waiting…" : "", { muted: true });
  let current = "answer-base";
  try {
    const client = await needClient();
    const base = await client.generate(prompt, { adapter: false, maxNewTokens: MAX_NEW_TOKENS });
    setAnswer("answer-base", base.text || "(no text)", { done: true });
    if (withAdapter) {
      current = "answer-adapter";
      setAnswer(current, "Generating…", { muted: true });
      const tuned = await client.generate(prompt, { adapter: true, maxNewTokens: MAX_NEW_TOKENS });
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

// ---------------------------------------------------------------- 6. downloads

/** Keeps links to the exported files, in case the browser held back a download. */
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

async function download(kind) {
  const card = $("download-card");
  hideError();
  state.exporting = true;
  updateButtons();
  try {
    const client = await needClient();
    let files;
    if (kind === "peft") {
      const peft = await client.exportPeft();
      files = ["adapter_config.json", "adapter_model.safetensors"].map((n) => [n, peft[n]]);
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

// ---------------------------------------------------------------- wiring

function bind() {
  $("error-dismiss").addEventListener("click", hideError);

  $("load-model").addEventListener("click", loadModel);
  $("model-url").addEventListener("input", () => selectModelSource("url"));
  $("model-url").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !$("load-model").disabled) loadModel();
  });
  for (const id of ["model-file", "model-folder"]) {
    $(id).addEventListener("change", (e) => {
      if (e.target.files.length) setModelFiles([...e.target.files]);
    });
  }
  dropZone($("model-drop"), setModelFiles, (err) => showError(err, $("model-drop").closest(".card")));

  $("data-file").addEventListener("change", (e) => {
    const file = e.target.files[0];
    if (file) chooseDataFile(file);
    e.target.value = "";
  });
  dropZone($("data-drop"), (files) => chooseDataFile(files[0]), (err) => showError(err, $("data-drop").closest(".card")));
  $("use-sample").addEventListener("click", () => chooseDataFile(null));
  for (const id of DATA_INPUTS) $(id).addEventListener("change", onDataSettingChange);

  $("train").addEventListener("click", () => train(false));
  $("pause").addEventListener("click", togglePause);
  $("stop").addEventListener("click", stopRun);
  $("resume-checkpoint").addEventListener("click", resumeCheckpoint);

  $("generate").addEventListener("click", generate);
  $("prompt").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey) && !$("generate").disabled) generate();
  });
  $("download-peft").addEventListener("click", () => download("peft"));
  $("download-gguf").addEventListener("click", () => download("gguf"));

  // A file dropped outside a drop zone must not navigate away from the run.
  for (const type of ["dragover", "drop"]) document.addEventListener(type, (e) => e.preventDefault());

  new ResizeObserver(scheduleChart).observe($("loss-chart"));
  window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", scheduleChart);
  setInterval(() => {
    if (state.training && state.run?.since != null) updateFigures();
  }, 1000);
}

bind();
updateButtons();
scheduleChart();
state.clientReady = openClient();
