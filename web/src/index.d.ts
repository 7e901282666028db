// Types of the `weblora` package.

export interface WebGPUStatus {
  ok: boolean;
  /** What is wrong and what to do, in plain words. */
  message: string;
}

/** Whether this browser can run WebGPU compute. */
export function checkWebGPU(): Promise<WebGPUStatus>;

export interface GpuInfo {
  name: string;
  backend: string;
  deviceType: string;
  shaderF16: boolean;
  subgroups: boolean;
  maxStorageBinding: number;
  maxBuffer: number;
  /** The matmul kernel family the engine runs. */
  kernels: "cpu" | "tiled";
}

/** One training or data setting as a form shows it; `WebLoRA.settingsTable` lists them all. */
export interface SettingSpec {
  /** The key in `TrainSettings` or `DataSettings`. */
  name: string;
  group: "train" | "data";
  /** One line: the command line's help. */
  help: string;
  /** null: unset (no step limit; length grouping decided by shuffling). */
  default: number | boolean | string | string[] | null;
  kind: "integer" | "number" | "boolean" | "choice" | "list";
  /** A choice's values; a list's items ("all-linear" stands for all of them). */
  choices?: string[];
  /** The accepted values: min to max (null: no bound), each end included unless open. */
  range?: { min: number; max: number | null; minOpen: boolean; maxOpen: boolean };
}

export interface ModelInfo {
  name: string;
  architecture: string;
  layers: number;
  hiddenSize: number;
  intermediateSize: number;
  heads: number;
  kvHeads: number;
  vocabSize: number;
  parameters: number;
  /** Bytes the frozen weights take on the GPU. */
  gpuBytes: number;
  chatTemplate: boolean;
}

export interface DataSettings {
  /** Examples are truncated to this many tokens. Default 512. */
  seqLen?: number;
  /** Train on the assistant's answers only, or on every token. Default "answers". */
  trainOn?: "answers" | "all";
  /** Fraction of the examples held out for evaluation. Default 0. */
  evalSplit?: number;
  format?: "auto" | "text" | "prompt-completion" | "alpaca" | "messages" | "sharegpt";
  skipBadLines?: boolean;
  seed?: number;
}

export interface MaskedSpan {
  text: string;
  /** Whether the loss is computed on these tokens. */
  supervised: boolean;
  tokens: number;
}

/** The summary of a dataset, as `weblora data --json` prints it. */
export interface DataSummary {
  file: string;
  kind: string;
  format: string;
  chat_template: string | null;
  seq_len: number;
  examples: number;
  tokens: number;
  supervised_tokens: number;
  eval_examples: number;
  eval_tokens: number;
  truncated_examples: number;
  skipped_lines: number;
  skipped: { line: number; reason: string }[];
  warnings: string[];
  first_example: { line: number; tokens: number; supervised: number; spans: MaskedSpan[] } | null;
  [key: string]: unknown;
}

export type Target = "q_proj" | "k_proj" | "v_proj" | "o_proj" | "gate_proj" | "up_proj" | "down_proj" | "all-linear";

/** LoRA and training settings; the defaults are `weblora train`'s. */
export interface TrainSettings {
  rank?: number;
  alpha?: number;
  dropout?: number;
  targets?: Target[];
  rslora?: boolean;
  /** DoRA (PEFT's use_dora): a trained magnitude per output row. */
  dora?: boolean;
  lr?: number;
  schedule?: "constant" | "linear" | "cosine";
  warmup?: number;
  epochs?: number;
  maxSteps?: number;
  batchSize?: number;
  gradAccum?: number;
  maxGradNorm?: number;
  weightDecay?: number;
  /** Evaluate every N updates (0: only at the end). */
  evalEvery?: number;
  /** Checkpoint into the origin's private file system every N updates (0: only at the end);
   * `train`'s `checkpointEvery` option sets it when this is not given. */
  checkpointEvery?: number;
  seed?: number;
  shuffle?: boolean;
  /** Put examples of similar length in one batch; default: only when shuffling. */
  groupByLength?: boolean;
  /** Pack several short examples into each row (less padding); each keeps its own positions
   * and attends only to itself, so the loss is the same as unpacked. Default false. */
  packing?: boolean;
  /** Recompute activations in backward (less memory, slower): "auto" (the default) turns it on
   * only when the run would not fit `memoryBudget` without it; `true` and `false` mean on and off. */
  recompute?: "auto" | "on" | "off" | boolean;
  /** GPU memory the run may take, in GB. WebGPU does not say how much a device has, so without
   * a budget only the device's binding and buffer limits are checked. */
  memoryBudget?: number;
}

export interface StepEvent {
  step: number;
  totalSteps: number;
  loss: number;
  gradNorm: number;
  learningRate: number;
  /** Supervised tokens of the update. */
  tokens: number;
  /** Tokens of the update's batches, padding included. */
  batchTokens: number;
  epoch: number;
  /** [loss, tokens] when this update evaluated. */
  eval: [number, number] | null;
  done: boolean;
  /** Always false in a step event: a diverged update ends training with an error. */
  diverged: boolean;
  /** The message of a diverged update; null in a step event. */
  divergence: string | null;
  /** A checkpoint was written after this update. */
  checkpointDue: boolean;
  /** Seconds since training started (or resumed). */
  seconds: number;
  /** Tokens per second since then, padding included. */
  tokensPerSecond: number;
}

/** What the package's promises reject with: the engine's message, and what kind of failure it is. */
export interface WebLoRAError extends Error {
  /**
   * "setting" (a bad setting, named in `setting`), "io", "run", "data", "load", "lora", "memory",
   * "gpu", "device-lost" (the GPU is gone: create a new WebLoRA and resume from the checkpoint),
   * "out-of-memory", "no-gpu", ...
   */
  kind?: string;
  /** The setting at fault, as the settings objects name it (e.g. "maxGradNorm"). */
  setting?: string;
}

export interface StatusEvent {
  state: "training" | "paused" | "resumed" | "stopped" | "done";
  step: number;
  totalSteps: number;
  trainableParameters?: number;
}

export interface ProgressEvent {
  file: string;
  loaded: number;
  total: number | null;
}

export interface Events {
  progress: ProgressEvent;
  status: StatusEvent;
  step: StepEvent;
  eval: { step: number; loss: number; tokens: number };
  checkpoint: { step: number };
  error: { message: string };
  /**
   * The GPU device is gone (a crashed GPU process, a driver reset): every later call fails with
   * kind "device-lost". Create a new WebLoRA, load the model again (from the cache) and resume
   * from the last checkpoint: `train(settings, { resume: true })`.
   */
  deviceLost: { message: string };
}

export interface GenerateOptions {
  maxNewTokens?: number;
  /** 0 is greedy (the default). */
  temperature?: number;
  topK?: number;
  topP?: number;
  seed?: number;
  /** false (the default): the base model alone; true: the adapter being trained; a name: that
   * adapter of the library. */
  adapter?: boolean | string;
  /** Feed the prompt as it is, without the model's chat template. */
  raw?: boolean;
}

/** An adapter of the library, as `listAdapters` gives it. */
export interface AdapterInfo {
  name: string;
  r: number;
  alpha: number;
  /** The adapted projections, as PEFT names them. */
  targets: string[];
  dora: boolean;
  rslora: boolean;
  parameters: number;
  /** adapter_config.json's base_model_name_or_path. */
  baseModel: string | null;
}

/** A kept adapter: loaded onto the base model, or not (no model yet, or `error` says why). */
export interface LibraryEntry extends Partial<AdapterInfo> {
  name: string;
  /** Its PEFT files' size. */
  bytes: number;
  /** When it was kept (ms since 1970). */
  added: number;
  loaded: boolean;
  /** Why it does not load onto the loaded model (another base's adapter), or null. */
  error: string | null;
}

/** One answer of `compare`: `adapter` null for the base model alone. */
export interface Answer {
  adapter: string | null;
  text: string;
  tokens: number;
}

export interface CheckpointInfo {
  model: string;
  data: string;
  settings: TrainSettings;
  step: number;
  totalSteps: number;
}

/** What one (B, T) shape of a run takes on the GPU, in bytes. */
export interface MemoryShape {
  batch: number;
  seq_len: number;
  recompute: boolean;
  weights: number;
  /** The adapter's parameters and gradients. */
  adapter: number;
  /** AdamW's moments. */
  optimizer: number;
  activations: number;
  inputs: number;
  total: number;
  largest_binding: { name: string; bytes: number };
}

/** A run's memory plan: the shape it allocates, recompute decided from the setting and the budget. */
export interface MemoryPlan {
  setting: "auto" | "on" | "off";
  plan: MemoryShape;
  /** The same shape with recompute the other way. */
  other: MemoryShape;
  limits: { maxStorageBufferBindingSize: number; maxBufferSize: number };
  budget: number | null;
  fits: boolean;
  /** The decision, or what does not fit and what would. */
  message: string;
  /** The plan as `weblora train --dry-run` prints it. */
  text: string;
}

export class WebLoRA {
  /** Starts the worker and opens the GPU; rejects with a plain message when WebGPU is missing. */
  /**
   * `kernels`: the matmul kernels, "auto" (the default: the CPU family on a software adapter such
   * as SwiftShader, the tiled family on a GPU), "tiled" (workgroup-memory tiles) or "cpu".
   * `limits`: "adapter" (the default: every limit the adapter offers) or "webgpu-default"
   * (WebGPU's defaults only: 128 MiB storage bindings, 256 MiB buffers, as many phones offer).
   */
  static create(options?: {
    workerUrl?: string | URL;
    kernels?: "auto" | "tiled" | "cpu";
    limits?: "adapter" | "webgpu-default";
  }): Promise<WebLoRA>;
  gpu: GpuInfo;
  /** Every setting with its help, default and range, from the engine. */
  settingsTable: SettingSpec[];
  on<K extends keyof Events>(type: K, listener: (data: Events[K]) => void): () => void;
  /** A `.gguf` URL, a Hugging Face repo id or `resolve/main/` URL, or local files. */
  loadModel(source: string | Blob | File[] | FileList, options?: { cache?: boolean }): Promise<ModelInfo>;
  /** Reads a dataset with the loaded model's tokenizer. A new dataset ends the current run (keep
   * its adapter in the library with `saveAdapter` first); the next `train` starts a fresh one. */
  loadData(data: Blob | string, settings?: DataSettings, name?: string): Promise<DataSummary>;
  /** The memory plan of a run with `settings` on the loaded model and data, before anything is
   * allocated (`weblora train --dry-run`'s). */
  memoryPlan(settings?: TrainSettings): Promise<MemoryPlan>;
  train(
    settings?: TrainSettings,
    options?: { resume?: boolean; checkpointEvery?: number },
  ): Promise<{ step: number; totalSteps: number; stopped: boolean }>;
  pause(): Promise<void>;
  resume(): Promise<void>;
  stop(): Promise<void>;
  generate(prompt: string, options?: GenerateOptions): Promise<{ text: string; tokens: number }>;
  exportPeft(): Promise<{ "adapter_config.json": Blob; "adapter_model.safetensors": Blob }>;
  /** Keeps the adapter being trained in the library as `name` (in place of one of that name). */
  saveAdapter(name: string): Promise<AdapterInfo>;
  /** Imports a PEFT adapter into the library: its folder's files (or adapter_config.json and
   * adapter_model.safetensors), or a URL of its folder or a Hugging Face repo id. The name
   * defaults to the folder's or repo's. */
  loadAdapter(source: string | File[] | FileList, options?: { name?: string }): Promise<AdapterInfo>;
  /** The library: every kept adapter, oldest first. */
  listAdapters(): Promise<LibraryEntry[]>;
  deleteAdapter(name: string): Promise<void>;
  /** A kept adapter's PEFT files. */
  adapterFiles(name: string): Promise<{ "adapter_config.json": Blob; "adapter_model.safetensors": Blob }>;
  /** Answers `prompt` with each of `adapters` (names; null for the base alone) side by side, the
   * base model read once; each answer equals `generate` with that adapter alone. */
  compare(prompt: string, adapters: (string | null)[], options?: Omit<GenerateOptions, "adapter">): Promise<Answer[]>;
  /** Mixes library adapters as PEFT's add_weighted_adapter(combination_type="cat") into a new
   * library adapter `name`. */
  mix(parts: { name: string; weight: number }[], name: string): Promise<AdapterInfo>;
  exportGguf(): Promise<Blob>;
  checkpointInfo(): Promise<CheckpointInfo | null>;
  clearCheckpoint(): Promise<void>;
  terminate(): void;
}
