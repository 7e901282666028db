// Building the page's pieces: number formats, model facts and the dataset summary.

import { el } from "/dom.js";

/** @param {number} n */
export const fmtInt = (n) => Math.round(n).toLocaleString("en-US");

/** @param {number | null | undefined} n */
export function fmtBytes(n) {
  if (n == null) return "?";
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} GB`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} KB`;
  return `${n} B`;
}

/** @param {number} n */
export function fmtCount(n) {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} K`;
  return String(n);
}

/** @param {number} seconds */
export function fmtDuration(seconds) {
  if (!Number.isFinite(seconds)) return "–";
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
}

/**
 * The facts of a loaded model, as <div><dt><dd> elements.
 * @param {import("/web/src/index.js").ModelInfo} info
 */
export function modelFacts(info) {
  const facts = [
    ["Name", info.name],
    ["Architecture", info.architecture],
    ["Layers", fmtInt(info.layers)],
    ["Parameters", fmtCount(info.parameters)],
    ["GPU memory", fmtBytes(info.gpuBytes)],
    ["Hidden size", fmtInt(info.hiddenSize)],
    ["Heads", info.kvHeads && info.kvHeads !== info.heads ? `${info.heads} (${info.kvHeads} KV)` : String(info.heads)],
    ["Vocabulary", fmtInt(info.vocabSize)],
    ["Chat template", info.chatTemplate ? "yes" : "no"],
  ];
  return facts.map(([k, v]) => fact(k, v));
}

/**
 * @param {string} term
 * @param {string} value
 * @param {string | null} [note]
 */
function fact(term, value, note) {
  const div = el("div");
  div.append(el("dt", null, term));
  const dd = el("dd", null, value);
  if (note) dd.append(" ", el("span", "muted", note));
  div.append(dd);
  return div;
}

/** A dataset summary: its figures, skipped lines, warnings and the first example with its
 * trained-on tokens marked.
 * @param {import("/web/src/index.js").DataSummary} s
 */
export function summaryView(s) {
  const pct = s.tokens ? ` (${((100 * s.supervised_tokens) / s.tokens).toFixed(0)}%)` : "";
  const stats = el("dl", "facts");
  stats.append(
    fact("Examples", fmtInt(s.examples), s.eval_examples ? `+ ${fmtInt(s.eval_examples)} held out for eval` : null),
    fact("Tokens", fmtInt(s.tokens)),
    fact("Trained tokens", fmtInt(s.supervised_tokens) + pct),
    fact("Truncated", fmtInt(s.truncated_examples), s.truncated_examples ? `longer than ${s.seq_len} tokens` : null),
    fact("Skipped lines", fmtInt(s.skipped_lines)),
    fact("Format", s.format, s.chat_template ? `· chat template from ${s.chat_template}` : null),
  );
  /** @type {HTMLElement[]} */
  const parts = [stats];
  if (s.skipped?.length) {
    const details = el("details", "skipped");
    details.append(el("summary", null, `Skipped lines (${s.skipped.length})`));
    const ul = el("ul");
    for (const { line, reason } of s.skipped.slice(0, 50)) ul.append(el("li", null, `line ${line}: ${reason}`));
    if (s.skipped.length > 50) ul.append(el("li", "muted", `… and ${s.skipped.length - 50} more`));
    details.append(ul);
    parts.push(details);
  }
  if (s.warnings?.length) {
    const ul = el("ul", "warnings");
    for (const w of s.warnings) ul.append(el("li", null, w));
    parts.push(ul);
  }
  const ex = s.first_example;
  if (ex) {
    const head = el("p", "example-head");
    head.append(
      el("strong", null, "First example"),
      el("span", "muted", ` · line ${ex.line} · ${fmtInt(ex.tokens)} tokens, ${fmtInt(ex.supervised)} trained on`),
    );
    const pre = el("pre", "example");
    for (const span of ex.spans) {
      const part = el("span", span.supervised ? "sup" : "ctx", span.text);
      part.title = `${span.tokens} tokens · ${span.supervised ? "trained on" : "context only"}`;
      pre.append(part);
    }
    const legend = el("p", "example-legend small");
    legend.append(el("span", "sup", "trained on"), " the loss is computed on these tokens   ", el("span", "ctx", "context"), " read, not learned");
    parts.push(head, pre, legend);
  }
  return parts;
}
