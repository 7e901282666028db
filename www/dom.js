// Typed look-ups of the page's elements: each returns the element with that id as the kind of
// element the caller needs, or throws naming the id, so a renamed or retyped element fails at
// once instead of as `undefined` later.

/**
 * The element `#id`, which must be a `type` (e.g. HTMLInputElement).
 * @template {Element} T
 * @param {string} id
 * @param {{ new (): T, prototype: T }} type
 * @returns {T}
 */
export function byId(id, type) {
  const node = document.getElementById(id);
  if (!(node instanceof type)) throw new Error(`the page has no ${type.name} #${id}`);
  return node;
}

/** @param {string} id */
export const $ = (id) => byId(id, HTMLElement);
/** @param {string} id */
export const inputEl = (id) => byId(id, HTMLInputElement);
/** @param {string} id */
export const buttonEl = (id) => byId(id, HTMLButtonElement);
/** @param {string} id */
export const selectEl = (id) => byId(id, HTMLSelectElement);
/** @param {string} id */
export const textareaEl = (id) => byId(id, HTMLTextAreaElement);
/** @param {string} id */
export const canvasEl = (id) => byId(id, HTMLCanvasElement);

/**
 * A new element: `el("a", "muted", "text")`.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {string | null} [className]
 * @param {string | null} [text]
 * @returns {HTMLElementTagNameMap[K]}
 */
export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text != null) node.textContent = text;
  return node;
}
