// The WebLoRA worker: owns the wasm engine and the WebGPU device. Requests `{ id, op, args }`
// come from index.js; answers are `{ id, ok, value | error }`; events are `{ event, data }`.
// Engine calls never overlap: each goes through `exclusive`, so a generation asked for while
// training runs between two steps.

import init, { Engine } from "../pkg/weblora.js";
import { PEFT_FILES, removeAdapter, storeAdapter, storedAdapters, storedFiles } from "./library.js";
import { fetchText, openUrl, pump } from "./sources.js";
import { readFile, topDir, writeFile } from "./store.js";

const CHECKPOINT_DIR = "weblora-checkpoint";

/** @type {Engine | null} */
let engine = null;
/** @type {Promise<unknown>} */
let chain = Promise.resolve();
let model = null; // { name, info }
let dataName = null;
const run = { active: false, paused: false, stopping: false, wake: null };
/** Why a kept adapter did not load on the loaded model, by name. */
let libraryErrors = new Map();

/**
 * @template T
 * @param {() => T | Promise<T>} fn
 * @returns {Promise<T>}
 */
function exclusive(fn) {
  const p = chain.then(fn);
  chain = p.catch(() => {});
  return p;
}

function emit(event, data) {
  self.postMessage({ event, data });
}

function needEngine() {
  if (!engine) throw new Error("the engine is not open");
  return engine;
}

const progress = (file) => (loaded, total) => emit("progress", { file, loaded, total });

async function loadGguf(name, src) {
  const e = needEngine();
  e.beginGguf(name, src.total ?? undefined);
  await pump(src.stream, src.total, (c) => e.feed(c), progress(name));
  return e.finishModel();
}

async function loadHfUrl(target, cache) {
  const e = needEngine();
  const file = (n) => new URL(n, target.url).href;
  const config = await fetchText(file("config.json"), { cache });
  const tokenizer = await fetchText(file("tokenizer.json"), { cache });
  const tokConfig = await fetchText(file("tokenizer_config.json"), { cache, optional: true });
  const genConfig = await fetchText(file("generation_config.json"), { cache, optional: true });
  const jinja = await fetchText(file("chat_template.jinja"), { cache, optional: true });
  e.beginHf(target.name, config, new TextEncoder().encode(tokenizer), tokConfig ?? undefined, genConfig ?? undefined, jinja ?? undefined);
  const index = await fetchText(file("model.safetensors.index.json"), { cache, optional: true });
  const shards = index ? [...new Set(Object.values(JSON.parse(index).weight_map ?? {}))] : ["model.safetensors"];
  for (const shard of shards) {
    const src = await openUrl(file(shard), { cache });
    e.beginFile(shard, src.total ?? undefined);
    await pump(src.stream, src.total, (c) => e.feed(c), progress(shard));
    e.endFile();
  }
  return e.finishModel();
}

async function loadFiles(files) {
  const e = needEngine();
  const byName = new Map(files.map((f) => [f.name, f]));
  const gguf = files.find((f) => f.name.toLowerCase().endsWith(".gguf"));
  if (gguf) return loadGguf(gguf.name, { stream: gguf.stream(), total: gguf.size });
  const need = (n) => {
    const f = byName.get(n);
    if (!f) throw new Error(`the chosen files have no ${n}: pick a .gguf file, or a model folder with config.json, tokenizer.json and *.safetensors`);
    return f;
  };
  const config = await need("config.json").text();
  const tokenizer = new Uint8Array(await need("tokenizer.json").arrayBuffer());
  const text = async (n) => (byName.has(n) ? await byName.get(n).text() : undefined);
  const folder = files[0].webkitRelativePath?.split("/")[0] || "local model";
  const small = ["tokenizer_config.json", "generation_config.json", "chat_template.jinja"];
  const [tokConfig, genConfig, jinja] = await Promise.all(small.map(text));
  e.beginHf(folder, config, tokenizer, tokConfig, genConfig, jinja);
  const shards = files.filter((f) => f.name.endsWith(".safetensors")).sort((a, b) => a.name.localeCompare(b.name));
  if (!shards.length) throw new Error("the chosen files have no .safetensors weights");
  for (const f of shards) {
    e.beginFile(f.name, f.size);
    await pump(f.stream(), f.size, (c) => e.feed(c), progress(f.name));
    e.endFile();
  }
  return e.finishModel();
}

const checkpointDir = (create) => topDir(CHECKPOINT_DIR, create);

async function saveCheckpoint(meta) {
  const files = await needEngine().checkpoint();
  const dir = await checkpointDir(true);
  // run.json last: a checkpoint without it (a crash mid-write) is not offered for resuming.
  try {
    await dir.removeEntry("run.json");
  } catch {}
  for (const name of Engine.checkpointFiles()) await writeFile(dir, name, files[name]);
  await writeFile(dir, "run.json", new TextEncoder().encode(JSON.stringify(meta)));
  emit("checkpoint", { step: meta.step });
}

async function readCheckpoint() {
  try {
    const dir = await checkpointDir(false);
    const read = (n) => readFile(dir, n);
    const meta = JSON.parse(new TextDecoder().decode(await read("run.json")));
    const files = {};
    for (const n of Engine.checkpointFiles()) files[n] = await read(n);
    return { meta, files };
  } catch {
    return null;
  }
}

async function train({ settings, resume, checkpointEvery }) {
  if (run.active) throw new Error("training is already running");
  if (!model) throw new Error("load a model first");
  Object.assign(run, { active: true, paused: false, stopping: false });
  try {
    // The engine checks every setting before anything runs.
    const full = { checkpointEvery, ...settings };
    let info = await exclusive(() => needEngine().startRun(full));
    if (resume) {
      const ck = await readCheckpoint();
      if (ck && ck.meta.model === model.name && ck.meta.data === dataName) {
        const f = ck.files;
        const [config, adapter, optimizer, state] = Engine.checkpointFiles().map((n) => f[n]);
        info = await exclusive(() => engine.restore(config, adapter, optimizer, state));
        emit("status", { state: "resumed", step: info.step, totalSteps: info.totalSteps });
      }
    }
    emit("status", { state: "training", ...info });
    let last = { step: info.step, done: info.step >= info.totalSteps };
    while (!run.stopping && !last.done) {
      if (run.paused) {
        emit("status", { state: "paused", step: last.step, totalSteps: info.totalSteps });
        await new Promise((r) => (run.wake = r));
        if (!run.stopping) emit("status", { state: "training", step: last.step, totalSteps: info.totalSteps });
        continue;
      }
      const rec = await exclusive(() => engine.step());
      if (rec.diverged) throw Object.assign(new Error(rec.divergence), { kind: "run" });
      last = rec;
      emit("step", { ...rec, totalSteps: info.totalSteps });
      if (rec.eval) emit("eval", { step: rec.step, loss: rec.eval[0], tokens: rec.eval[1] });
      if (rec.checkpointDue || rec.done) {
        const meta = { model: model.name, data: dataName, settings, step: rec.step, totalSteps: info.totalSteps };
        await exclusive(() => saveCheckpoint(meta));
      }
    }
    const stopped = !last.done;
    emit("status", { state: stopped ? "stopped" : "done", step: last.step, totalSteps: info.totalSteps });
    return { step: last.step, totalSteps: info.totalSteps, stopped };
  } finally {
    run.active = false;
  }
}

function wake() {
  const w = run.wake;
  run.wake = null;
  if (w) w();
}

/** Loads every kept adapter onto the loaded model; one that does not fit it is listed with why. */
async function loadLibrary() {
  libraryErrors = new Map();
  if (!navigator.storage?.getDirectory) return;
  for (const { name } of await storedAdapters()) {
    try {
      const files = await storedFiles(name);
      needEngine().loadAdapter(name, new TextDecoder().decode(files["adapter_config.json"]), files["adapter_model.safetensors"]);
    } catch (e) {
      libraryErrors.set(name, e instanceof Error ? e.message : String(e));
    }
  }
}

/** The whole body of `url`. */
async function fetchBytes(url) {
  const src = await openUrl(url, { cache: false });
  return new Uint8Array(await new Response(src.stream).arrayBuffer());
}

/** PEFT's two files from picked files (a folder or the two files) or a URL or Hugging Face repo id. */
async function adapterSource({ files, url }) {
  if (files) {
    const byName = new Map(files.map((f) => [f.name, f]));
    const missing = PEFT_FILES.filter((n) => !byName.has(n));
    if (missing.length) {
      throw new Error(`the chosen files have no ${missing.join(" nor ")}: pick a PEFT adapter folder, or its adapter_config.json and adapter_model.safetensors`);
    }
    const folder = files[0].webkitRelativePath?.split("/").slice(-2, -1)[0];
    return {
      name: folder || "imported",
      config: await byName.get("adapter_config.json").text(),
      safetensors: new Uint8Array(await byName.get("adapter_model.safetensors").arrayBuffer()),
    };
  }
  const target = Engine.resolveModelUrl(url, self.location.href);
  if (target.kind === "gguf") {
    throw new Error(`${url}: a .gguf file; the library takes PEFT adapters (a folder or Hugging Face repo with adapter_config.json and adapter_model.safetensors)`);
  }
  const file = (n) => new URL(n, target.url).href;
  return {
    name: target.name.split("/").pop() || "imported",
    config: await fetchText(file("adapter_config.json"), { cache: false }),
    safetensors: await fetchBytes(file("adapter_model.safetensors")),
  };
}

/** Puts PEFT files in the engine's library as `name`, then keeps them in this origin's storage. */
async function keepAdapter(name, config, safetensors) {
  const info = needEngine().loadAdapter(name, config, safetensors);
  await storeAdapter(name, { "adapter_config.json": config, "adapter_model.safetensors": safetensors });
  libraryErrors.delete(name);
  return info;
}

function withBlobs(files) {
  const out = {};
  for (const [name, v] of Object.entries(files)) {
    out[name] = new Blob([v], { type: name.endsWith(".json") ? "application/json" : "application/octet-stream" });
  }
  return out;
}

const ops = {
  async open({ kernels, limits }) {
    await init();
    engine = await Engine.open(kernels, limits);
    // A lost device (a crashed GPU process, a driver reset) is told at once, not at the next call.
    engine.deviceLost().then((message) => message && emit("deviceLost", { message }));
    return { gpu: engine.gpuInfo(), settingsTable: Engine.settingsTable() };
  },
  async loadModel({ url, files, cache }) {
    if (run.active) throw new Error("stop training before loading another model");
    return exclusive(async () => {
      model = null;
      let info;
      if (files) {
        info = await loadFiles(files);
        info.name = files.map((f) => f.name).find((n) => n.endsWith(".gguf")) ?? info.name ?? "local model";
      } else {
        const target = Engine.resolveModelUrl(url, self.location.href);
        info =
          target.kind === "gguf" ? await loadGguf(target.name, await openUrl(target.url, { cache })) : await loadHfUrl(target, cache);
        info.name = target.name;
      }
      model = { name: info.name, info };
      await loadLibrary();
      return info;
    });
  },
  async loadData({ data, name, settings }) {
    if (run.active) throw new Error("stop training before loading another dataset");
    const bytes = typeof data === "string" ? new TextEncoder().encode(data) : new Uint8Array(await data.arrayBuffer());
    const summary = await exclusive(() => needEngine().setData(name, bytes, settings));
    dataName = name;
    return summary;
  },
  async memoryPlan({ settings }) {
    return exclusive(() => needEngine().memoryPlan(settings));
  },
  train,
  async pause() {
    run.paused = true;
  },
  async resume() {
    run.paused = false;
    wake();
  },
  async stop() {
    run.stopping = true;
    run.paused = false;
    wake();
  },
  async generate({ prompt, options }) {
    return exclusive(() => needEngine().generate(prompt, options));
  },
  async saveAdapter({ name }) {
    return exclusive(async () => {
      const files = await needEngine().exportPeft();
      return keepAdapter(name, files["adapter_config.json"], files["adapter_model.safetensors"]);
    });
  },
  async loadAdapter({ files, url, name }) {
    if (!model) throw new Error("load a model first: an adapter is loaded onto its base model");
    const src = await adapterSource({ files, url });
    return exclusive(() => keepAdapter(name || src.name, src.config, src.safetensors));
  },
  async listAdapters() {
    const loaded = new Map((engine ? engine.listAdapters() : []).map((a) => [a.name, a]));
    return (await storedAdapters()).map((s) => ({
      ...(loaded.get(s.name) ?? { name: s.name }),
      bytes: s.bytes,
      added: s.added,
      loaded: loaded.has(s.name),
      error: libraryErrors.get(s.name) ?? null,
    }));
  },
  async deleteAdapter({ name }) {
    return exclusive(async () => {
      engine?.deleteAdapter(name);
      libraryErrors.delete(name);
      await removeAdapter(name);
    });
  },
  async adapterFiles({ name }) {
    return withBlobs(await storedFiles(name));
  },
  async compare({ prompt, adapters, options }) {
    return exclusive(() => needEngine().compare(prompt, adapters, options));
  },
  async mix({ parts, name }) {
    return exclusive(async () => {
      const { adapter, files } = await needEngine().mix(parts, name);
      await storeAdapter(name, files);
      libraryErrors.delete(name);
      return adapter;
    });
  },
  async exportPeft() {
    return withBlobs(await exclusive(() => needEngine().exportPeft()));
  },
  async exportGguf() {
    const bytes = await exclusive(() => needEngine().exportGguf());
    return new Blob([bytes], { type: "application/octet-stream" });
  },
  async checkpointInfo() {
    const ck = await readCheckpoint();
    return ck ? ck.meta : null;
  },
  async clearCheckpoint() {
    const root = await navigator.storage.getDirectory();
    try {
      await root.removeEntry(CHECKPOINT_DIR, { recursive: true });
    } catch {}
  },
};

self.onmessage = async (e) => {
  const { id, op, args } = e.data;
  try {
    if (!(op in ops)) throw new Error(`unknown request ${op}`);
    const value = await ops[op](args);
    self.postMessage({ id, ok: true, value });
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    self.postMessage({ id, ok: false, error: message, kind: err?.kind ?? "error", setting: err?.setting });
  }
};
