// The offer to resume a run saved in this site's storage (the worker checkpoints every few
// updates), shown when the saved run is of the loaded model and dataset and was not finished.

import { $, buttonEl } from "/dom.js";
import { state, updateButtons } from "/page.js";

export function hideCheckpoint() {
  state.checkpoint = null;
  $("checkpoint").hidden = true;
}

/** Offers to resume the saved checkpoint when it is of this model and dataset. */
export async function checkCheckpoint() {
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
  buttonEl("resume-checkpoint").textContent = `Resume from step ${ck.step}`;
  $("checkpoint").hidden = false;
  updateButtons();
}
