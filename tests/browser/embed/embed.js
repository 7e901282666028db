// A minimal page of its own that embeds the `weblora` package and trains through its API; the
// browser test calls these functions with page.evaluate.
import { WebLoRA, checkWebGPU } from "/web/src/index.js";

let client = null;
const log = { steps: [], progress: [], status: [], checkpoints: [] };

/** The page's client, created at the first call (with `options`, e.g. `{ kernels: "tiled" }`). */
async function connect(options = {}) {
  if (client) return client;
  client = await WebLoRA.create(options);
  client.on("step", (s) => log.steps.push(s));
  client.on("progress", (p) => log.progress.push(p));
  client.on("status", (s) => log.status.push(s));
  client.on("checkpoint", (c) => log.checkpoints.push(c));
  return client;
}

/** Reads a safetensors file's header in the page: its keys and shapes. */
async function safetensorsHeader(blob) {
  const buf = new Uint8Array(await blob.arrayBuffer());
  const n = Number(new DataView(buf.buffer).getBigUint64(0, true));
  return JSON.parse(new TextDecoder().decode(buf.subarray(8, 8 + n)));
}

window.embed = {
  log,
  checkWebGPU,
  connect: async (options) => (await connect(options)).gpu,
  loadModel: async (url) => (await connect()).loadModel(url),
  loadData: async (text, settings, name) => (await connect()).loadData(text, settings, name),
  /** Trains; with `stopAtStep`, asks to stop once that step's event arrives. */
  train: async (settings, options = {}) => {
    const c = await connect();
    let off = () => {};
    if (options.stopAtStep) {
      off = c.on("step", (s) => {
        if (s.step >= options.stopAtStep) c.stop();
      });
    }
    try {
      return await c.train(settings, options);
    } finally {
      off();
    }
  },
  generate: async (prompt, options) => (await connect()).generate(prompt, options),
  exportPeft: async () => {
    const files = await (await connect()).exportPeft();
    return {
      config: JSON.parse(await files["adapter_config.json"].text()),
      header: await safetensorsHeader(files["adapter_model.safetensors"]),
      bytes: files["adapter_model.safetensors"].size,
    };
  },
  exportGguf: async () => {
    const blob = await (await connect()).exportGguf();
    const head = new Uint8Array(await blob.slice(0, 4).arrayBuffer());
    return { magic: new TextDecoder().decode(head), bytes: blob.size };
  },
  checkpointInfo: async () => (await connect()).checkpointInfo(),
  clearCheckpoint: async () => (await connect()).clearCheckpoint(),
};
document.getElementById("state").textContent = "ready";
