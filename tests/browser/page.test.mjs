// The page end to end in headless Chromium, its device opened with WebGPU's default limits only
// (`?limits=webgpu-default`: 128 MiB bindings, 256 MiB buffers): its settings form is the engine's
// table of settings (one control per setting, with the library's default and range); load the
// demo model, drop a JSONL dataset, see the memory plan (the same bytes as the native
// `--dry-run`), train a few steps with the loss on the chart, generate, download the PEFT adapter
// and check its files here in Node; crash the browser's GPU process: the page says the GPU was
// lost, opens it again, restores the adapter from its last checkpoint and answers as before; then
// the same run natively (`weblora train`, same settings, seed and data) must give the same adapter
// keys and shapes and the same losses. Screenshots go to target/screenshots/.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { demoModel, nativeCli, open, root } from "./browser.mjs";

const STEPS = 3;
const SETTINGS = { "max-steps": STEPS, "batch-size": 2, "seq-len": 64, lr: "0.001", rank: 8, "eval-every": 0, "eval-split": 0.25, seed: 42 };
/** SETTINGS as the native command line's flags. */
const NATIVE_SETTINGS = [
  "--max-steps", String(STEPS), "--batch-size", "2", "--seq-len", "64", "--lr", "0.001",
  "--rank", "8", "--alpha", "16", "--eval-split", "0.25", "--seed", "42",
];
/** Browser and native losses agree to this relative difference: the same kernels run on two
 * software GPUs (SwiftShader, lavapipe) whose float functions may differ in the last bits.
 * Measured: 6.8e-8, 4.2e-7 and 4.6e-7 on the three steps, 1.4e-7 on the eval loss. */
const LOSS_RTOL = 5e-6;
/** Settings the page sets itself, so its form leaves them out. */
const PAGE_SETS = ["checkpointEvery"];

const shots = join(root, "target", "screenshots");
const work = mkdtempSync(join(tmpdir(), "weblora-page-"));
const dataFile = join(work, "pirate8.jsonl");

/** A safetensors file's header: tensor name → { dtype, shape, data_offsets }. */
function safetensorsHeader(bytes) {
  const n = Number(bytes.readBigUInt64LE(0));
  assert.ok(8 + n <= bytes.length, "the header fits in the file");
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString("utf8"));
  for (const [k, v] of Object.entries(header)) {
    if (k === "__metadata__") continue;
    const [start, end] = v.data_offsets;
    assert.equal(end - start, v.shape.reduce((a, d) => a * d, 1) * 4, `${k}: f32 bytes of its shape`);
    assert.ok(8 + n + end <= bytes.length, `${k}: its data lies in the file`);
  }
  return header;
}

function shapes(header) {
  return Object.fromEntries(Object.entries(header).filter(([k]) => k !== "__metadata__").map(([k, v]) => [k, v.shape]));
}

let b;
before(async () => {
  mkdirSync(shots, { recursive: true });
  const lines = readFileSync(join(root, "data", "pirate_chat.jsonl"), "utf8").split("\n").filter(Boolean);
  writeFileSync(dataFile, lines.slice(0, 8).join("\n") + "\n");
  b = await open();
});
after(async () => {
  await b?.close();
});

test("page: load the demo model, drop data, train, generate, download; native gives the same run", { timeout: 2_400_000 }, async () => {
  const { page } = b;
  await page.goto(`${b.server.url}?limits=webgpu-default`);
  await page.waitForSelector("#load-model:not([disabled])");
  await page.waitForFunction(() => window.weblora?.client != null, null, { timeout: 120_000 });
  const limits = await page.evaluate(() => window.weblora.client.gpu);
  assert.equal(limits.maxStorageBinding, 134217728, "WebGPU's default binding limit");
  assert.equal(limits.maxBuffer, 268435456, "WebGPU's default buffer limit");
  await page.screenshot({ path: join(shots, "1-before.png"), fullPage: true });

  // The settings form is the engine's table of settings: one control per setting the page shows,
  // with the CLI flag's name as its id and the library's default and range.
  const form = await page.evaluate(() => {
    const table = window.weblora.client.settingsTable;
    const controls = [...document.querySelectorAll("[data-setting]")].map((n) => {
      const boxes = [...n.querySelectorAll('input[type="checkbox"]')];
      return {
        name: n.dataset.setting,
        id: n.id,
        sameId: document.querySelectorAll(`[id="${n.id}"]`).length,
        tag: n.tagName,
        type: n.type ?? null,
        value: n.value ?? null,
        checked: n.checked ?? null,
        min: n.min ?? null,
        max: n.max ?? null,
        ticked: boxes.filter((t) => t.checked).map((t) => t.value),
        boxes: boxes.map((t) => t.value),
      };
    });
    return { table, controls };
  });
  const shown = form.table.filter((s) => !PAGE_SETS.includes(s.name));
  const names = shown.map((s) => s.name);
  assert.ok(names.length >= 20, `the engine's table lists the settings (${names.length})`);
  assert.deepEqual(form.controls.map((c) => c.name).sort(), [...names].sort(), "one control per setting the page shows, and no other");
  for (const spec of shown) {
    const c = form.controls.find((c) => c.name === spec.name);
    const what = `${spec.name}: ${JSON.stringify(c)}`;
    assert.equal(c.id, spec.name.replace(/[A-Z]/g, (ch) => `-${ch.toLowerCase()}`), what);
    assert.equal(c.sameId, 1, what);
    if (spec.kind === "list") {
      const items = spec.choices.filter((x) => x !== "all-linear");
      assert.deepEqual(c.boxes, items, what);
      assert.deepEqual(c.ticked, spec.default.includes("all-linear") ? items : spec.default, what);
    } else if (spec.kind === "boolean" && typeof spec.default === "boolean") {
      assert.equal(c.type, "checkbox", what);
      assert.equal(c.checked, spec.default, what);
    } else if (spec.kind === "boolean" || spec.kind === "choice") {
      assert.equal(c.tag, "SELECT", what);
      if (spec.default == null || spec.kind === "boolean") assert.ok(["", "auto"].includes(c.value), what);
      else assert.equal(c.value, String(spec.default), what);
    } else {
      assert.equal(c.type, "number", what);
      if (spec.default == null) assert.equal(c.value, "", what);
      else assert.equal(Math.fround(Number(c.value)), Math.fround(spec.default), what);
      assert.equal(c.min, spec.range ? String(spec.range.min) : "", what);
      assert.equal(c.max, spec.range?.max != null ? String(spec.range.max) : "", what);
    }
  }

  await page.click("#load-model");
  await page.waitForFunction(() => document.querySelector("#model-status")?.textContent.includes("Loaded"), null, { timeout: 900_000 });

  for (const [id, value] of Object.entries(SETTINGS)) await page.fill(`#${id}`, String(value));
  await page.setInputFiles("#data-file", dataFile);
  await page.waitForSelector('#data-summary[data-ready="true"]', { timeout: 120_000 });
  const summary = await page.evaluate(() => ({
    name: document.querySelector("#data-name").textContent,
    facts: Object.fromEntries(
      [...document.querySelectorAll("#data-summary dl.facts > div")].map((d) => [d.querySelector("dt").textContent, d.querySelector("dd").textContent]),
    ),
  }));
  assert.equal(summary.name, "pirate8.jsonl", "the dropped file is the selected dataset");
  // Its 8 chats: a quarter held out for evaluation, none skipped, read as OpenAI messages.
  assert.equal(summary.facts["Examples"], "6 + 2 held out for eval");
  assert.equal(summary.facts["Skipped lines"], "0");
  assert.match(summary.facts["Format"], /^messages\b/);

  // The memory plan, before Train is pressed: what the page shows is the engine's plan, and its
  // bytes are the native dry run's for the same settings and data.
  await page.waitForFunction(() => /^Memory: batch/.test(document.querySelector("#memory-plan")?.textContent ?? ""), null, { timeout: 120_000 });
  const shownPlan = await page.textContent("#memory-plan");
  const dry = JSON.parse(
    execFileSync(nativeCli(), ["train", "--model", demoModel, "--data", dataFile, "--out", join(work, "dry"), ...NATIVE_SETTINGS, "--dry-run", "--json"], {
      env: { ...process.env, WEBLORA_LIMITS: "webgpu-default" },
      stdio: ["ignore", "pipe", "inherit"],
    }).toString("utf8"),
  );
  const expected = await page.evaluate(async (p) => {
    const { fmtBytes } = await import("/render.js");
    return `Memory: batch ${p.plan.batch} × ${p.plan.seq_len} takes ${fmtBytes(p.plan.total)} (activations ${fmtBytes(p.plan.activations)}); ${p.message}.`;
  }, dry);
  console.log(`page: ${shownPlan}`);
  assert.equal(shownPlan, expected, "the page's plan is the native dry run's");
  assert.ok(dry.fits && dry.plan.total > 0);

  await page.click("#train");
  await page.waitForFunction(() => window.weblora?.steps?.length >= 1, null, { timeout: 900_000 });
  await page.screenshot({ path: join(shots, "2-during.png"), fullPage: true });
  await page.waitForFunction(() => document.querySelector("#train-status")?.textContent.includes("Done"), null, { timeout: 1_200_000 });
  await page.screenshot({ path: join(shots, "3-after.png"), fullPage: true });
  // The finished run's adapter is kept in the library, named after the dataset.
  await page.waitForFunction(() => window.weblora.kept === 1, null, { timeout: 300_000 });
  assert.equal(await page.getAttribute("#library-list li", "data-name"), "pirate8");

  const { steps, evals } = await page.evaluate(() => ({ steps: window.weblora.steps, evals: window.weblora.evals }));
  assert.deepEqual(steps.map((s) => s.step), [1, 2, 3]);
  for (const s of steps) assert.ok(Number.isFinite(s.loss) && s.loss > 0 && s.tokensPerSecond > 0);
  assert.equal(evals.length, 1, "one evaluation, after the last step");
  // The chart drew something: the canvas is not blank.
  const inked = await page.evaluate(() => {
    const c = document.querySelector("#loss-chart");
    const px = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 3; i < px.length; i += 4) if (px[i] > 0) n++;
    return n;
  });
  assert.ok(inked > 500, `the loss chart has ink (${inked} pixels)`);

  // The page answers up to 256 new tokens by default; a short answer keeps the test short.
  assert.equal(await page.inputValue("#max-new-tokens"), "256");
  await page.fill("#max-new-tokens", "24");
  await page.fill("#prompt", "Hello!");
  await page.click("#generate");
  await page.waitForSelector('#answer-base[data-done="true"]', { timeout: 900_000 });
  await page.waitForSelector('#answer-adapter[data-done="true"]', { timeout: 900_000 });
  assert.ok((await page.textContent("#answer-base")).trim().length > 0);
  assert.ok((await page.textContent("#answer-adapter")).trim().length > 0);
  await page.screenshot({ path: join(shots, "4-generated.png"), fullPage: true });

  const downloads = [];
  const bothDownloads = new Promise((resolve) => {
    page.on("download", (d) => {
      downloads.push(d);
      if (downloads.length === 2) resolve();
    });
  });
  await page.click("#download-peft");
  // The page lists the files it saved once the export is done; the browser reports both downloads.
  await page.waitForFunction(() => document.querySelectorAll("#download-links a").length === 2, null, { timeout: 300_000 });
  await Promise.race([bothDownloads, new Promise((resolve) => setTimeout(resolve, 30_000).unref())]);
  assert.equal(downloads.length, 2, "two files: adapter_config.json and adapter_model.safetensors");
  const files = {};
  for (const d of downloads) {
    const path = join(work, d.suggestedFilename());
    await d.saveAs(path);
    files[d.suggestedFilename()] = readFileSync(path);
  }
  const config = JSON.parse(files["adapter_config.json"].toString("utf8"));
  assert.equal(config.peft_type, "LORA");
  assert.equal(config.r, 8);
  assert.equal(config.lora_alpha, 16);
  assert.equal(config.target_modules.length, 7);
  const browserHeader = safetensorsHeader(files["adapter_model.safetensors"]);
  assert.equal(Object.keys(shapes(browserHeader)).length, 30 * 7 * 2);
  assert.deepEqual(browserHeader["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"].shape, [8, 576]);
  assert.deepEqual(browserHeader["base_model.model.model.layers.29.mlp.down_proj.lora_B.weight"].shape, [576, 8]);

  for (const u of b.requests) assert.equal(new URL(u).origin, b.origin, `no request leaves the page's origin: ${u}`);

  // The GPU process crashes (as a driver reset or a GPU hang ends it): the page says the GPU was
  // lost at once, and opens it again with the model, the dataset and the adapter of its last
  // checkpoint, which answers as before.
  const answer = await page.textContent("#answer-adapter");
  const cdp = await b.browser.newBrowserCDPSession();
  await cdp.send("Browser.crashGpuProcess");
  await page.waitForSelector("#gpu-lost:not([hidden])", { timeout: 120_000 });
  const lost = { text: await page.textContent("#gpu-lost-text"), button: await page.textContent("#gpu-reopen") };
  console.log(`after the crash: ${lost.text} [${lost.button}]`);
  assert.match(lost.text, /^The GPU device was lost: /);
  await page.waitForFunction(() => document.querySelector("#gpu-reopen")?.textContent === "Open the GPU again and restore the adapter", null, { timeout: 60_000 });
  assert.equal(await page.isDisabled("#train"), true, "nothing runs on a lost device");
  await page.screenshot({ path: join(shots, "5-gpu-lost.png"), fullPage: true });
  await page.click("#gpu-reopen");
  await page.waitForFunction(() => window.weblora.reopened === 1, null, { timeout: 900_000 });
  assert.equal(await page.isHidden("#gpu-lost"), true);
  assert.match(await page.textContent("#model-status"), /^Loaded /);
  assert.match(await page.textContent("#train-status"), /^Done — step 3 \/ 3/);
  await page.click("#generate");
  await page.waitForSelector('#answer-adapter[data-done="true"]', { timeout: 900_000 });
  assert.equal(await page.textContent("#answer-adapter"), answer, "the restored adapter answers as the trained one did");
  // The restored run is the same run: its adapter is kept under the same name, not again.
  await page.waitForFunction(() => window.weblora.kept === 2, null, { timeout: 300_000 });
  const kept = await page.evaluate(() => window.weblora.client.listAdapters());
  assert.deepEqual(kept.map((a) => [a.name, a.error]), [["pirate8", null]], "one kept adapter, loaded on the model");
  await page.screenshot({ path: join(shots, "6-reopened.png"), fullPage: true });

  // The same run natively.
  const out = join(work, "native");
  execFileSync(nativeCli(), ["train", "--model", demoModel, "--data", dataFile, "--out", out, ...NATIVE_SETTINGS], {
    stdio: ["ignore", "ignore", "inherit"],
  });
  const state = JSON.parse(readFileSync(join(out, "trainer_state.json"), "utf8"));
  const native = state.log_history.map((e) => e.loss);
  const nativeHeader = safetensorsHeader(readFileSync(join(out, "adapter_model.safetensors")));
  assert.deepEqual(shapes(browserHeader), shapes(nativeHeader), "the same keys and shapes");
  assert.equal(native.length, STEPS);
  for (let i = 0; i < STEPS; i++) {
    const rel = Math.abs(steps[i].loss - native[i]) / Math.abs(native[i]);
    console.log(`step ${i + 1}: browser loss ${steps[i].loss.toFixed(6)}, native ${native[i].toFixed(6)}, relative difference ${rel.toExponential(2)}`);
    assert.ok(rel < LOSS_RTOL, `step ${i + 1}: browser ${steps[i].loss} vs native ${native[i]}`);
  }
  const nativeEval = state.log_history.at(-1).eval_loss;
  const rel = Math.abs(evals[0].loss - nativeEval) / nativeEval;
  console.log(`eval loss: browser ${evals[0].loss.toFixed(6)}, native ${nativeEval.toFixed(6)}, relative difference ${rel.toExponential(2)}`);
  assert.ok(rel < LOSS_RTOL);
});
