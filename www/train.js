// 4. Train: starting, pausing, stopping and resuming a run, its figures (step, loss, speed,
// time) and the live loss chart.

import { drawLossChart } from "/chart.js";
import { checkCheckpoint, hideCheckpoint } from "/checkpoint.js";
import { ensureData } from "/data.js";
import { $, canvasEl } from "/dom.js";
import { keepTrained } from "/library.js";
import { hideError, hooks, messageOf, needClient, setTrainStatus, showError, state, updateButtons } from "/page.js";
import { fmtBytes, fmtCount, fmtDuration, fmtInt } from "/render.js";
import { markSetting, trainSettings, writeSettings } from "/settings-form.js";

/** The page checkpoints its runs every this many updates (the form leaves `checkpointEvery` out). */
const CHECKPOINT_EVERY = 10;

/** @returns {import("/page.js").RunView} */
const newRun = () => ({ startStep: null, totalSteps: null, activeMs: 0, since: null, lastStep: null, trainable: null });

/**
 * Trains with the form's settings, or resumes the saved checkpoint with its own.
 * @param {boolean} [resume]
 */
export async function train(resume = false) {
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
  state.run = newRun();
  resetFigures();
  scheduleChart();
  setTrainStatus(resume ? "Restoring the checkpoint…" : "Starting: building the GPU pipelines…");
  try {
    const client = await needClient();
    await client.train(settings, { checkpointEvery: CHECKPOINT_EVERY, resume });
  } catch (err) {
    state.runState = "failed";
    setTrainStatus(`Failed: ${messageOf(err)}`, "bad");
    // A setting the engine refused is marked in the form.
    const refused = /** @type {import("/web/src/index.js").WebLoRAError} */ (err);
    if (refused?.kind === "setting") markSetting(refused.setting);
    showError(err, refused?.kind === "setting" ? $("settings-card") : card);
  } finally {
    pauseClock();
    state.training = false;
    updateButtons();
    updateFigures();
  }
  checkCheckpoint();
}

/**
 * Shows, before Train is pressed, the memory plan of the form's settings on the loaded model and
 * dataset: what the run's largest batch takes on the GPU, whether recompute is needed, and
 * whether it fits (the engine's message says what would when it does not).
 */
export async function showMemoryPlan() {
  const box = $("memory-plan");
  if (!state.model || !state.data || state.training) return;
  let settings;
  try {
    settings = trainSettings();
  } catch {
    return;
  }
  try {
    const plan = await (await needClient()).memoryPlan(settings);
    const p = plan.plan;
    box.textContent = `Memory: batch ${p.batch} × ${p.seq_len} takes ${fmtBytes(p.total)} (activations ${fmtBytes(p.activations)}); ${plan.message}.`;
    box.title = plan.text;
    box.classList.toggle("bad", !plan.fits);
  } catch (err) {
    box.textContent = `Memory plan: ${messageOf(err)}`;
    box.classList.add("bad");
  }
  box.hidden = false;
}

/** Puts the saved run's settings into the form and continues it. */
export function resumeCheckpoint() {
  if (!state.checkpoint) return;
  writeSettings(state.checkpoint.settings ?? {});
  train(true);
}

export async function togglePause() {
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

export async function stopRun() {
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

// ---------------------------------------------------------------- the run's clock and events

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

/** @param {import("/web/src/index.js").StatusEvent} s */
export function onStatus(s) {
  const run = state.run ?? (state.run = newRun());
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
      if (s.step > 0) keepTrained();
      break;
    case "done":
      state.runState = "done";
      pauseClock();
      setTrainStatus(`Done — step ${s.step} / ${s.totalSteps} in ${fmtDuration(activeSeconds())}`, "ok");
      keepTrained();
      break;
  }
  updateButtons();
  updateFigures();
}

/** @param {import("/web/src/index.js").StepEvent} e */
export function onStep(e) {
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

/** @param {import("/page.js").EvalEvent} e */
export function onEval(e) {
  hooks.evals.push(e);
  updateFigures();
  scheduleChart();
}

// ---------------------------------------------------------------- figures and chart

function resetFigures() {
  for (const id of ["fig-step", "fig-loss", "fig-eval", "fig-speed", "fig-elapsed", "fig-eta", "fig-params"]) $(id).textContent = "–";
}

export function updateFigures() {
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

let chartQueued = false;

/** Redraws the loss chart at the next frame (once, however often it is asked). */
export function scheduleChart() {
  if (chartQueued) return;
  chartQueued = true;
  requestAnimationFrame(() => {
    chartQueued = false;
    drawLossChart(canvasEl("loss-chart"), hooks.steps, hooks.evals, state.run?.totalSteps ?? 0);
  });
}
