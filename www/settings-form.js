// The settings form, built from the library's table of settings (`client.settingsTable`): every
// setting's name, group, help line, default, kind, choices and range come from the engine, as the
// CLI's flags do. This module adds presentation only: where each setting goes on the page, an
// optional shorter label, hint, input step or option wording, and which settings the page sets
// itself. A setting the table below does not place still appears, under Advanced, so the form
// never misses one.

import { el } from "/dom.js";

/** @typedef {import("/web/src/index.js").TrainSettings} TrainSettings */
/** @typedef {import("/web/src/index.js").DataSettings} DataSettings */

/** @typedef {import("/web/src/index.js").SettingSpec} SettingSpec */

/**
 * Where a setting goes: `section` names a `[data-section]` container of index.html; `omit` (a
 * reason) keeps it out of the form because the page sets it itself; `data` reads a training
 * setting into the data settings too.
 * @typedef {{
 *   section?: "data" | "data-advanced" | "adapter" | "training" | "advanced",
 *   data?: boolean,
 *   label?: string,
 *   step?: string,
 *   placeholder?: string,
 *   hint?: string,
 *   options?: Record<string, string>,
 *   omit?: string,
 * }} Place
 */

/** @type {Record<string, Place>} */
const PLACES = {
  // 2. Dataset
  seqLen: { section: "data", label: "Sequence length" },
  trainOn: { section: "data", label: "Train on", options: { answers: "Answers only", all: "All tokens" } },
  evalSplit: { section: "data", label: "Eval split", step: "0.05" },
  format: { section: "data-advanced", label: "Record format" },
  skipBadLines: { section: "data-advanced", label: "Skip bad lines" },
  // 3. Settings: the adapter
  rank: { section: "adapter", label: "Rank" },
  alpha: { section: "adapter", label: "Alpha" },
  dropout: { section: "adapter", label: "Dropout", step: "0.01" },
  // The CLI's help speaks of a comma-separated flag; here they are boxes to tick.
  targets: { section: "adapter", label: "Layers to adapt", hint: "Attention (q, k, v, o) and MLP (gate, up, down) projections; all seven is “all-linear”." },
  // Training
  lr: { section: "training", label: "Learning rate" },
  schedule: { section: "training", label: "Schedule", options: { linear: "Linear decay", cosine: "Cosine decay", constant: "Constant" } },
  epochs: { section: "training", label: "Epochs" },
  maxSteps: { section: "training", label: "Max steps", placeholder: "whole epochs" },
  batchSize: { section: "training", label: "Batch size" },
  gradAccum: { section: "training", label: "Gradient accumulation" },
  evalEvery: { section: "training", label: "Eval every" },
  // The held-out split takes the run's seed, as with the command line's one --seed.
  seed: { section: "training", label: "Seed", data: true },
  // Advanced
  warmup: { section: "advanced", label: "Warm-up steps" },
  weightDecay: { section: "advanced", label: "Weight decay" },
  maxGradNorm: { section: "advanced", label: "Max gradient norm" },
  rslora: { section: "advanced", label: "rsLoRA" },
  dora: { section: "advanced", label: "DoRA" },
  shuffle: { section: "advanced", label: "Shuffle" },
  groupByLength: { section: "advanced", label: "Group by length", options: { "": "When shuffling", true: "Always", false: "Never" } },
  packing: { section: "advanced", label: "Pack examples" },
  recompute: { section: "advanced", label: "Recompute activations", options: { auto: "When needed", on: "Always", off: "Never" } },
  memoryBudget: { section: "advanced", label: "Memory budget (GB)", step: "0.1", placeholder: "unknown" },
  checkpointEvery: { omit: "the page checkpoints its runs every few updates itself (see train.js)" },
};

/** `maxSteps` → `max-steps`: the CLI's flag without its dashes, and the input's id. */
export const inputId = (/** @type {string} */ name) => name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/** `maxGradNorm` → "Max grad norm", for a setting the page has no label for. */
const labelOf = (/** @type {string} */ name) => {
  const words = inputId(name).replace(/-/g, " ");
  return words[0].toUpperCase() + words.slice(1);
};

/**
 * A number as a person would type it: the shortest decimal that reads back to the same value
 * (to the same f32, for a value that is one, as the engine's f32 settings are).
 * @param {number} v
 */
export function showNumber(v) {
  const f32 = Math.fround(v) === v;
  for (let p = 1; p <= 17; p++) {
    const s = String(Number(v.toPrecision(p)));
    if (f32 ? Math.fround(Number(s)) === v : Number(s) === v) return s;
  }
  return String(v);
}

/** A choice between "true" and "false" (a boolean that may also be left unset) reads as a boolean. */
const yesNo = (/** @type {SettingSpec} */ s) => s.kind === "choice" && !!s.choices?.length && s.choices.every((c) => c === "true" || c === "false");

/**
 * The form's controls, by setting name, once built.
 * @type {Map<string, { spec: SettingSpec, groups: Set<"train" | "data">, place: Place, node: HTMLElement }>}
 */
const controls = new Map();

/**
 * Builds every control of `table` into the page's sections; `onDataChange` runs when a data
 * setting changes (the dataset is read again with it).
 * @param {SettingSpec[]} table
 * @param {{ onDataChange: () => void }} options
 */
export function buildForm(table, { onDataChange }) {
  if (!Array.isArray(table)) throw new Error("the engine gave no table of settings (web/pkg is older than the page?)");
  controls.clear();
  for (const spec of table) {
    const place = PLACES[spec.name] ?? { section: spec.group === "data" ? "data-advanced" : "advanced" };
    if (place.omit) continue;
    if (controls.has(spec.name)) throw new Error(`the engine's table lists ${spec.name} twice`);
    /** @type {Set<"train" | "data">} */
    const groups = new Set([spec.group]);
    if (place.data) groups.add("data");
    controls.set(spec.name, { spec, groups, place, node: null });
  }
  for (const c of controls.values()) c.node = control(c.spec, c.place);
  // Clear the sections, then fill them in the page table's order (the library's for the rest).
  const sections = [...document.querySelectorAll("[data-section]")].filter((n) => n instanceof HTMLElement);
  /** @type {Map<string, { fields: HTMLElement, lists: HTMLElement[], checks: HTMLElement[] }>} */
  const parts = new Map();
  for (const section of sections) {
    section.replaceChildren();
    parts.set(section.dataset.section ?? "", { fields: el("div", section.dataset.fields ?? "fields"), lists: [], checks: [] });
  }
  const order = Object.keys(PLACES);
  const rank = (/** @type {string} */ name) => (order.includes(name) ? order.indexOf(name) : order.length);
  const sorted = [...controls.values()].sort((a, b) => rank(a.spec.name) - rank(b.spec.name));
  for (const { spec, place, node, groups } of sorted) {
    const part = parts.get(place.section ?? "advanced") ?? parts.get("advanced");
    if (!part) throw new Error(`the page has no section for the setting ${spec.name}`);
    if (spec.kind === "list") part.lists.push(node);
    else if (spec.kind === "boolean") part.checks.push(node);
    else part.fields.append(node);
    if (groups.has("data")) node.addEventListener("change", onDataChange);
  }
  for (const section of sections) {
    const part = parts.get(section.dataset.section ?? "");
    if (!part) continue;
    if (part.fields.childElementCount) section.append(part.fields);
    section.append(...part.lists, ...part.checks);
  }
  writeDefaults();
}

/** Says in each section why there is no form yet (`text`). */
export function formPending(text) {
  for (const section of document.querySelectorAll("[data-section]")) {
    if (section.matches('[data-section="adapter"], [data-section="data"]')) section.replaceChildren(el("p", "hint", text));
    else section.replaceChildren();
  }
}

/**
 * One setting's control, with `id` = `inputId(name)` and `data-setting` = name on the element
 * that holds its value (for a list, its fieldset).
 * @param {SettingSpec} spec
 * @param {Place} place
 * @returns {HTMLElement}
 */
function control(spec, place) {
  const id = inputId(spec.name);
  const label = place.label ?? labelOf(spec.name);
  const hint = place.hint ?? spec.help;
  if (spec.kind === "list") {
    const box = el("fieldset", "targets");
    box.id = id;
    box.dataset.setting = spec.name;
    const list = el("div", "target-list");
    for (const item of listItems(spec)) {
      const tick = el("input");
      tick.type = "checkbox";
      tick.name = id;
      tick.value = item;
      const row = el("label");
      row.append(tick, ` ${item}`);
      list.append(row);
    }
    box.append(el("legend", null, label), list, el("p", "hint", hint));
    return box;
  }
  if (spec.kind === "boolean") {
    const tick = el("input");
    tick.type = "checkbox";
    tick.id = id;
    tick.dataset.setting = spec.name;
    const text = el("span");
    text.append(el("strong", null, label), " ", el("span", "muted", `— ${hint}`));
    const row = el("label", "check");
    row.append(tick, text);
    return row;
  }
  /** @type {HTMLInputElement | HTMLSelectElement} */
  let input;
  if (spec.kind === "choice") {
    input = el("select");
    const choices = [...(spec.choices ?? [])];
    const words = place.options ?? {};
    // An unset default is an option of its own: the library decides.
    if (spec.default == null && !choices.includes("auto")) choices.unshift("");
    for (const c of choices) {
      const option = el("option", null, words[c] ?? (c || "auto"));
      option.value = c;
      input.append(option);
    }
  } else {
    input = el("input");
    input.type = "number";
    const r = spec.range;
    if (r) {
      input.min = String(r.min);
      if (r.max != null) input.max = String(r.max);
    }
    input.step = place.step ?? (spec.kind === "integer" ? "1" : "any");
    if (spec.kind === "integer") input.inputMode = "numeric";
    if (place.placeholder) input.placeholder = place.placeholder;
  }
  input.id = id;
  input.dataset.setting = spec.name;
  const field = el("div", "field");
  const caption = el("label", null, label);
  caption.htmlFor = id;
  field.append(caption, input, el("p", "hint", hint));
  return field;
}

/** A list setting's items to tick: its choices, less the one that means all of them. */
const listItems = (/** @type {SettingSpec} */ spec) => (spec.choices ?? []).filter((c) => c !== "all-linear");

/** @param {string} name */
function valueNode(name) {
  const node = document.querySelector(`[data-setting="${name}"]`);
  if (!(node instanceof HTMLElement)) throw new Error(`the settings form has no ${name}`);
  return node;
}

/** Puts every setting's default back into its control. */
export function writeDefaults() {
  for (const { spec } of controls.values()) writeOne(spec, spec.default);
}

/**
 * Puts saved settings (a checkpoint's) into the form; names the form does not show are left alone.
 * @param {TrainSettings | DataSettings | Record<string, unknown>} saved
 */
export function writeSettings(saved) {
  for (const [name, value] of Object.entries(saved)) {
    const c = controls.get(name);
    if (c) writeOne(c.spec, value);
  }
}

/**
 * @param {SettingSpec} spec
 * @param {unknown} value
 */
function writeOne(spec, value) {
  const node = valueNode(spec.name);
  if (spec.kind === "list") {
    const items = Array.isArray(value) ? value.map(String) : [];
    const all = items.includes("all-linear");
    for (const tick of node.querySelectorAll("input")) tick.checked = all || items.includes(tick.value);
  } else if (node instanceof HTMLInputElement && node.type === "checkbox") {
    node.checked = value === true;
  } else if (node instanceof HTMLSelectElement) {
    node.value = value == null ? (spec.choices?.includes("auto") ? "auto" : "") : String(value);
  } else if (node instanceof HTMLInputElement) {
    node.value = typeof value === "number" ? showNumber(value) : value == null ? "" : String(value);
    node.removeAttribute("aria-invalid");
  }
}

/**
 * The settings of `group` from the form, checked against each setting's kind and range;
 * a blank optional number and an "auto" three-way choice are left out (the library's default).
 * Throws an error naming the setting, with its input marked and focused.
 * @param {"train" | "data"} group
 * @returns {Record<string, unknown>}
 */
function readGroup(group) {
  /** @type {Record<string, unknown>} */
  const out = {};
  for (const { spec, groups, place } of controls.values()) {
    if (!groups.has(group)) continue;
    const value = readOne(spec, place.label ?? labelOf(spec.name));
    if (value !== undefined) out[spec.name] = value;
  }
  return out;
}

/** The training settings in the form. */
export const trainSettings = () => /** @type {TrainSettings} */ (readGroup("train"));

/** The dataset settings in the form. */
export const dataSettings = () => /** @type {DataSettings} */ (readGroup("data"));

/** Whether the form has been built (the engine's table has arrived). */
export const formReady = () => controls.size > 0;

/**
 * @param {SettingSpec} spec
 * @param {string} label
 * @returns {unknown}
 */
function readOne(spec, label) {
  const node = valueNode(spec.name);
  if (spec.kind === "list") {
    const all = listItems(spec);
    const items = [...node.querySelectorAll("input")].filter((t) => t.checked).map((t) => t.value);
    if (!items.length) throw invalid(node, `${label}: choose at least one.`);
    return items.length === all.length && spec.choices?.includes("all-linear") ? ["all-linear"] : items;
  }
  if (node instanceof HTMLInputElement && node.type === "checkbox") return node.checked;
  if (node instanceof HTMLSelectElement) {
    if (node.value === "") return undefined;
    return yesNo(spec) ? node.value === "true" : node.value;
  }
  if (!(node instanceof HTMLInputElement)) throw new Error(`the settings form cannot read ${spec.name}`);
  node.removeAttribute("aria-invalid");
  const raw = node.value.trim();
  if (raw === "") {
    if (spec.default === null) return undefined;
    throw invalid(node, `${label} needs a value.`);
  }
  const value = Number(raw);
  const r = spec.range;
  let problem = null;
  if (!Number.isFinite(value)) problem = "is not a number";
  else if (spec.kind === "integer" && !Number.isInteger(value)) problem = "must be a whole number";
  else if (r && (r.minOpen ? value <= r.min : value < r.min)) problem = `must be ${r.minOpen ? "more than" : "at least"} ${r.min}`;
  else if (r && r.max != null && (r.maxOpen ? value >= r.max : value > r.max)) {
    problem = `must be ${r.maxOpen ? "less than" : "at most"} ${r.max}`;
  }
  if (problem) throw invalid(node, `${label} ${problem}.`);
  return value;
}

/**
 * Marks `node` as wrong, focuses it and returns the error to throw.
 * @param {HTMLElement} node
 * @param {string} message
 */
function invalid(node, message) {
  node.setAttribute("aria-invalid", "true");
  node.focus();
  return new Error(message);
}

/**
 * Marks the control of `name` (a setting the engine refused, as `err.setting` names it).
 * @param {string | undefined} name
 */
export function markSetting(name) {
  const node = name && controls.has(name) ? valueNode(name) : null;
  if (!node) return;
  node.setAttribute("aria-invalid", "true");
  node.focus();
}
