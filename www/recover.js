// After a lost GPU (a crashed GPU process, a driver reset): a new worker and device, the model
// loaded again (from the page's cache), the dataset read again, and the run's last checkpoint
// restored: an unfinished run continues from it, a finished one gets its adapter back.

import { $ } from "/dom.js";
import { loadModel } from "/model.js";
import { hideError, hooks, setTrainStatus, state, updateButtons } from "/page.js";
import { writeSettings } from "/settings-form.js";
import { train } from "/train.js";

/**
 * @param {() => Promise<import("/web/src/index.js").WebLoRA | null>} openClient
 *   opens WebGPU and a new worker (app.js's), or says why it cannot
 */
export async function reopenGpu(openClient) {
  $("gpu-lost").hidden = true;
  hideError();
  state.client?.terminate();
  state.client = null;
  hooks.client = null;
  state.gpuLost = false;
  state.training = false;
  setTrainStatus("Opening the GPU again…");
  updateButtons();
  state.clientReady = openClient();
  const client = await state.clientReady;
  if (!client) return;
  await loadModel();
  await state.dataChain;
  if (state.model && state.data) {
    const ck = await client.checkpointInfo().catch(() => null);
    if (ck && ck.model === state.model.name && ck.data === state.data.name) {
      state.checkpoint = ck;
      writeSettings(ck.settings ?? {});
      await train(true);
    } else {
      setTrainStatus("The GPU is open again; no saved run of this model and dataset to restore.");
    }
  }
  hooks.reopened++;
}
