// The live loss chart, drawn by hand on a canvas (the page's CSP allows no chart library).

/**
 * A round step (1, 2 or 5 × 10^k) that cuts `range` into about `count` parts.
 * @param {number} range
 * @param {number} count
 */
function niceStep(range, count) {
  const raw = range / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const f = raw / mag;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
}

/**
 * Draws the training loss (`steps`, a line) and the eval loss (`evals`, points) against the
 * update number on `canvas`, with the x axis running to at least `totalSteps`. Colours come
 * from the canvas's CSS custom properties (--chart-train, --chart-eval, --chart-grid, ...).
 * @param {HTMLCanvasElement} canvas
 * @param {{ step: number, loss: number }[]} steps
 * @param {{ step: number, loss: number }[]} evals
 * @param {number} totalSteps
 */
export function drawLossChart(canvas, steps, evals, totalSteps) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth;
  const h = canvas.clientHeight;
  if (!w || !h) return;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const css = getComputedStyle(canvas);
  const color = (/** @type {string} */ name) => css.getPropertyValue(name).trim();
  const font = css.fontFamily;
  ctx.font = `12px ${font}`;

  if (!steps.length && !evals.length) {
    ctx.fillStyle = color("--chart-text");
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    ctx.fillText("The loss appears here once training starts.", w / 2, h / 2);
    return;
  }

  const pad = { left: 52, right: 14, top: 12, bottom: 38 };
  const pw = w - pad.left - pad.right;
  const ph = h - pad.top - pad.bottom;
  const losses = steps.map((s) => s.loss).concat(evals.map((e) => e.loss));
  let lo = Math.min(...losses);
  let hi = Math.max(...losses);
  if (hi - lo < 1e-6) {
    lo -= 0.5;
    hi += 0.5;
  }
  const yStep = niceStep(hi - lo, 5);
  lo = Math.floor(lo / yStep) * yStep;
  hi = Math.ceil(hi / yStep) * yStep;
  const firstStep = steps.length ? Math.min(steps[0].step, evals[0]?.step ?? Infinity) : evals[0].step;
  const x0 = Math.max(0, firstStep - 1);
  const lastKnown = Math.max(steps[steps.length - 1]?.step ?? 0, evals[evals.length - 1]?.step ?? 0);
  const x1 = Math.max(totalSteps, lastKnown, x0 + 1);
  const X = (/** @type {number} */ s) => pad.left + ((s - x0) / (x1 - x0)) * pw;
  const Y = (/** @type {number} */ v) => pad.top + (1 - (v - lo) / (hi - lo)) * ph;

  // Grid and y ticks.
  ctx.lineWidth = 1;
  ctx.strokeStyle = color("--chart-grid");
  ctx.fillStyle = color("--chart-text");
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  const yDigits = Math.max(0, -Math.floor(Math.log10(yStep)));
  for (let v = lo; v <= hi + yStep / 2; v += yStep) {
    const y = Math.round(Y(v)) + 0.5;
    ctx.beginPath();
    ctx.moveTo(pad.left, y);
    ctx.lineTo(pad.left + pw, y);
    ctx.stroke();
    ctx.fillText(v.toFixed(yDigits), pad.left - 8, y);
  }
  // X ticks.
  const xStep = Math.max(1, niceStep(x1 - x0, Math.max(2, Math.floor(pw / 70))));
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  for (let s = Math.ceil(x0 / xStep) * xStep; s <= x1; s += xStep) {
    const x = Math.round(X(s)) + 0.5;
    ctx.beginPath();
    ctx.moveTo(x, pad.top + ph);
    ctx.lineTo(x, pad.top + ph + 4);
    ctx.stroke();
    ctx.fillText(String(s), x, pad.top + ph + 6);
  }
  ctx.strokeStyle = color("--chart-axis");
  ctx.beginPath();
  ctx.moveTo(pad.left + 0.5, pad.top);
  ctx.lineTo(pad.left + 0.5, pad.top + ph + 0.5);
  ctx.lineTo(pad.left + pw, pad.top + ph + 0.5);
  ctx.stroke();

  // Axis labels.
  ctx.fillText("step", pad.left + pw / 2, h - 15);
  ctx.save();
  ctx.translate(13, pad.top + ph / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.textBaseline = "middle";
  ctx.fillText("loss", 0, 0);
  ctx.restore();

  // Training loss: a line, with dots while there are few points.
  ctx.strokeStyle = color("--chart-train");
  ctx.fillStyle = color("--chart-train");
  ctx.lineWidth = 2;
  ctx.lineJoin = "round";
  ctx.beginPath();
  steps.forEach((s, i) => (i ? ctx.lineTo(X(s.step), Y(s.loss)) : ctx.moveTo(X(s.step), Y(s.loss))));
  ctx.stroke();
  if (steps.length < 40) {
    for (const s of steps) {
      ctx.beginPath();
      ctx.arc(X(s.step), Y(s.loss), 2.5, 0, 2 * Math.PI);
      ctx.fill();
    }
  }

  // Eval loss: points joined by a thin dashed line.
  ctx.strokeStyle = color("--chart-eval");
  ctx.fillStyle = color("--chart-eval");
  if (evals.length > 1) {
    ctx.lineWidth = 1.5;
    ctx.setLineDash([4, 4]);
    ctx.beginPath();
    evals.forEach((e, i) => (i ? ctx.lineTo(X(e.step), Y(e.loss)) : ctx.moveTo(X(e.step), Y(e.loss))));
    ctx.stroke();
    ctx.setLineDash([]);
  }
  for (const e of evals) {
    ctx.beginPath();
    ctx.arc(X(e.step), Y(e.loss), 4.5, 0, 2 * Math.PI);
    ctx.fill();
  }
}
