// The `weblora` package: LoRA fine-tuning in the browser. Everything heavy runs in a dedicated
// Web Worker (worker.js) that owns the WebGPU device, so the page never freezes; this module is
// the page-side client. See index.d.ts for the types.

/** Whether this browser can run WebGPU compute, and what to do when it cannot. */
export async function checkWebGPU() {
  if (typeof navigator === "undefined" || !("gpu" in navigator)) {
    return {
      ok: false,
      message:
        "This browser has no WebGPU. Use a recent Chrome or Edge (on Linux, start it with " +
        "--enable-unsafe-webgpu), Safari 26, or Firefox 141 or newer, with hardware acceleration turned on.",
    };
  }
  let adapter = null;
  try {
    adapter = await navigator.gpu.requestAdapter();
  } catch (e) {
    adapter = null;
  }
  if (!adapter) {
    return {
      ok: false,
      message:
        "WebGPU is present but found no GPU adapter. Turn on hardware acceleration in the browser's " +
        "settings, update the graphics driver, or try another browser.",
    };
  }
  return { ok: true, message: "WebGPU is available." };
}

export class WebLoRA {
  /** @type {import("./index.d.ts").GpuInfo | null} */
  gpu = null;
  /** @type {import("./index.d.ts").SettingSpec[]} */
  settingsTable = [];
  #worker;
  #next = 1;
  #pending = new Map();
  #listeners = new Map();

  /**
   * Starts the worker and opens the GPU. Rejects with a plain message when WebGPU is missing.
   * `options.kernels` chooses the matmul kernels: "auto" (the default: the CPU family on a
   * software adapter such as SwiftShader, the tiled family on a GPU), "tiled" or "cpu".
   * `options.limits` chooses the device's limits: "adapter" (the default: every limit the adapter
   * offers) or "webgpu-default" (WebGPU's defaults only: 128 MiB bindings, 256 MiB buffers).
   */
  static async create(options = {}) {
    const client = new WebLoRA(options);
    try {
      const opened = await client.#call("open", { kernels: options.kernels ?? "auto", limits: options.limits ?? "adapter" });
      client.gpu = opened.gpu;
      client.settingsTable = opened.settingsTable;
    } catch (e) {
      client.terminate();
      throw e;
    }
    return client;
  }

  constructor(options = {}) {
    const url = options.workerUrl ?? new URL("./worker.js", import.meta.url);
    this.#worker = new Worker(url, { type: "module", name: "weblora" });
    this.#worker.onmessage = (e) => this.#receive(e.data);
    this.#worker.onerror = (e) => {
      const err = new Error(e.message || "the WebLoRA worker failed to start");
      for (const { reject } of this.#pending.values()) reject(err);
      this.#pending.clear();
      this.#emit("error", { message: err.message });
    };
  }

  /** Listens to `progress`, `status`, `step`, `eval`, `checkpoint` or `error` events. */
  on(type, listener) {
    if (!this.#listeners.has(type)) this.#listeners.set(type, new Set());
    this.#listeners.get(type).add(listener);
    return () => this.#listeners.get(type)?.delete(listener);
  }

  /**
   * Loads a base model: a URL of a `.gguf` file, a Hugging Face repo id or `resolve/main/` URL,
   * or local files (one `.gguf`, or a folder's config.json, tokenizer files and safetensors).
   * Downloads are streamed with `progress` events and cached in the origin's private storage.
   */
  loadModel(source, options = {}) {
    const files = source instanceof Blob ? [source] : typeof source === "string" ? null : Array.from(source);
    const args = files ? { files, cache: false } : { url: String(source), cache: options.cache ?? true };
    return this.#call("loadModel", args);
  }

  /** Reads a dataset (a File, a Blob or a string) and returns its summary and first example. */
  loadData(data, settings = {}, name) {
    const fileName = name ?? (data instanceof File ? data.name : "data.jsonl");
    return this.#call("loadData", { data, name: fileName, settings });
  }

  /**
   * The memory plan of a run with `settings` on the loaded model and data, before anything is
   * allocated: what the weights, adapter, optimizer and activations take, the largest binding
   * against the device's limit, whether recompute is needed, and whether it fits (`fits`,
   * `message`; `text` as `weblora train --dry-run` prints it).
   */
  memoryPlan(settings = {}) {
    return this.#call("memoryPlan", { settings });
  }

  /**
   * Trains until the run is done or stopped; resolves to `{ step, totalSteps, stopped }`.
   * With `resume: true`, continues from the checkpoint saved in this origin, when it fits.
   */
  train(settings = {}, options = {}) {
    return this.#call("train", { settings, resume: !!options.resume, checkpointEvery: options.checkpointEvery ?? 10 });
  }

  pause() {
    return this.#call("pause", {});
  }

  resume() {
    return this.#call("resume", {});
  }

  stop() {
    return this.#call("stop", {});
  }

  /**
   * Continues `prompt` with the base model, with the adapter being trained (`options.adapter`
   * true), or with a library adapter (`options.adapter` its name).
   */
  generate(prompt, options = {}) {
    return this.#call("generate", { prompt, options });
  }

  /** Keeps the adapter being trained in the library as `name`, across reloads. */
  saveAdapter(name) {
    return this.#call("saveAdapter", { name });
  }

  /**
   * Imports a PEFT adapter into the library: its folder's files (or its adapter_config.json and
   * adapter_model.safetensors), or the URL of its folder or a Hugging Face repo id.
   */
  loadAdapter(source, options = {}) {
    const args = typeof source === "string" ? { url: source } : { files: Array.from(source) };
    return this.#call("loadAdapter", { ...args, name: options.name });
  }

  /** The library: every kept adapter, oldest first, with why one did not load on this model. */
  listAdapters() {
    return this.#call("listAdapters", {});
  }

  deleteAdapter(name) {
    return this.#call("deleteAdapter", { name });
  }

  /** A kept adapter's PEFT files, as Blobs. */
  adapterFiles(name) {
    return this.#call("adapterFiles", { name });
  }

  /** Answers `prompt` with each of `adapters` (names; null for the base) side by side. */
  compare(prompt, adapters, options = {}) {
    return this.#call("compare", { prompt, adapters, options });
  }

  /** Mixes library adapters (`[{ name, weight }]`) as PEFT's `cat` combination into `name`. */
  mix(parts, name) {
    return this.#call("mix", { parts, name });
  }

  /** The adapter as PEFT files: `{ "adapter_config.json": Blob, "adapter_model.safetensors": Blob }`. */
  exportPeft() {
    return this.#call("exportPeft", {});
  }

  /** The adapter as one llama.cpp GGUF LoRA file (GGUF base models only). */
  exportGguf() {
    return this.#call("exportGguf", {});
  }

  /** What the saved checkpoint is (`{ step, totalSteps, model, data, settings }`), or null. */
  checkpointInfo() {
    return this.#call("checkpointInfo", {});
  }

  clearCheckpoint() {
    return this.#call("clearCheckpoint", {});
  }

  terminate() {
    this.#worker.terminate();
    const err = new Error("the WebLoRA worker was stopped");
    for (const { reject } of this.#pending.values()) reject(err);
    this.#pending.clear();
  }

  #call(op, args) {
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage({ id, op, args });
    });
  }

  #receive(msg) {
    if (msg.event) {
      this.#emit(msg.event, msg.data);
      return;
    }
    const p = this.#pending.get(msg.id);
    if (!p) return;
    this.#pending.delete(msg.id);
    if (msg.ok) p.resolve(msg.value);
    else p.reject(Object.assign(new Error(msg.error), { kind: msg.kind, setting: msg.setting }));
  }

  #emit(type, data) {
    for (const fn of this.#listeners.get(type) ?? []) {
      try {
        fn(data);
      } catch (e) {
        console.error(e);
      }
    }
  }
}
