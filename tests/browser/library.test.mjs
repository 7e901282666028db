// The page's adapter library in headless Chromium: train two adapters on two datasets, the second
// with DoRA (each run keeps its adapter), import a PEFT adapter (written by PEFT itself:
// tests/fixtures/peft_import) from a folder URL, answer one prompt with the base and the three
// side by side, mix two, delete the mix, reload: the library is still there and answers the same.
// Each side-by-side answer must equal that adapter's answer alone; the imported adapter's must
// equal the native CLI's with the same folder; the mix must equal `weblora mix` natively on the
// same two adapters' files.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { demoModel, nativeCli, open, root } from "./browser.mjs";

const STEPS = 2;
const SETTINGS = { "max-steps": STEPS, "batch-size": 2, "seq-len": 48, lr: "0.01", rank: 4, "eval-split": 0, seed: 7 };
const PROMPT = "What is the capital of France?";
const NEW_TOKENS = 12;
const IMPORTED = join(root, "tests", "fixtures", "peft_import", "adapter");

const shots = join(root, "target", "screenshots");
const work = mkdtempSync(join(tmpdir(), "weblora-library-"));

let b;
before(async () => {
  mkdirSync(shots, { recursive: true });
  const lines = readFileSync(join(root, "data", "pirate_chat.jsonl"), "utf8").split("\n").filter(Boolean);
  writeFileSync(join(work, "pirate.jsonl"), lines.slice(0, 4).join("\n") + "\n");
  // The second dataset answers in capitals: other data, so another adapter.
  const shout = lines.slice(4, 8).map((l) => {
    const chat = JSON.parse(l);
    for (const m of chat.messages) if (m.role === "assistant") m.content = m.content.toUpperCase();
    return JSON.stringify(chat);
  });
  writeFileSync(join(work, "shout.jsonl"), shout.join("\n") + "\n");
  b = await open({ extra: { "/fixtures/": join(root, "tests", "fixtures") } });
});
after(async () => {
  await b?.close();
});

/** The library as the page lists it: name → the line that describes it. */
async function listed(page) {
  return page.evaluate(() =>
    Object.fromEntries([...document.querySelectorAll("#library-list li")].map((li) => [li.dataset.name, li.querySelector("span.small")?.textContent])),
  );
}

async function loadModel(page) {
  await page.waitForFunction(() => window.weblora?.client != null, null, { timeout: 120_000 });
  await page.click("#load-model");
  await page.waitForFunction(() => document.querySelector("#model-status")?.textContent.includes("Loaded"), null, { timeout: 900_000 });
}

/** Trains on `file` until the run is done and its adapter is kept (the `kept`-th time). */
async function trainOn(page, file, kept) {
  await page.setInputFiles("#data-file", join(work, file));
  await page.waitForFunction((f) => document.querySelector("#data-name")?.textContent === f, file);
  await page.waitForSelector('#data-summary[data-ready="true"]', { timeout: 120_000 });
  await page.click("#train");
  await page.waitForFunction((n) => window.weblora.kept === n, kept, { timeout: 1_200_000 });
}

/** The page's answer with one adapter alone (null: the base), through the package's `generate`. */
function alone(page, adapter) {
  return page.evaluate(([p, a, n]) => window.weblora.client.generate(p, { adapter: a ?? false, maxNewTokens: n }).then((r) => r.text), [PROMPT, adapter, NEW_TOKENS]);
}

/** A kept adapter's files, from the page into a folder here. */
async function saveFiles(page, name) {
  const files = await page.evaluate(async (n) => {
    const out = {};
    for (const [file, blob] of Object.entries(await window.weblora.client.adapterFiles(n))) {
      const bytes = new Uint8Array(await blob.arrayBuffer());
      let s = "";
      for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
      out[file] = btoa(s);
    }
    return out;
  }, name);
  const dir = join(work, name);
  mkdirSync(dir, { recursive: true });
  for (const [file, b64] of Object.entries(files)) writeFileSync(join(dir, file), Buffer.from(b64, "base64"));
  return dir;
}

/** A safetensors file's tensors: name → its bytes (hex of the raw data, for exact comparison). */
function tensors(path) {
  const bytes = readFileSync(path);
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString("utf8"));
  const out = {};
  for (const [k, v] of Object.entries(header)) {
    if (k === "__metadata__") continue;
    out[k] = { shape: v.shape, data: bytes.subarray(8 + n + v.data_offsets[0], 8 + n + v.data_offsets[1]).toString("hex") };
  }
  return out;
}

test("library: two trained, one imported, side by side, mixed, kept across a reload", { timeout: 2_400_000 }, async () => {
  const { page } = b;
  await page.goto(b.server.url);
  await loadModel(page);
  for (const [id, value] of Object.entries(SETTINGS)) await page.fill(`#${id}`, String(value));
  await trainOn(page, "pirate.jsonl", 1);
  await page.evaluate(() => (document.querySelector("#dora").closest("details").open = true));
  await page.check("#dora");
  await trainOn(page, "shout.jsonl", 2);

  await page.fill("#adapter-url", `${b.origin}/fixtures/peft_import/adapter/`);
  await page.fill("#adapter-name", "peft-import");
  await page.click("#import-adapter");
  await page.waitForSelector('#library-list li[data-name="peft-import"]', { timeout: 120_000 });
  const lib = await listed(page);
  console.log(`library: ${JSON.stringify(lib)}`);
  assert.deepEqual(Object.keys(lib), ["pirate", "shout", "peft-import"], "both runs' adapters kept, then the import");
  assert.match(lib.shout, /^r 4 · α \d+ · all linear · DoRA · /);
  assert.match(lib["peft-import"], /^r 4 · α 8 · (q_proj, v_proj|v_proj, q_proj) · /);

  // The same adapter from its two files, as the file picker gives them: the same adapter, then deleted.
  await page.fill("#adapter-name", "peft-files");
  await page.setInputFiles("#adapter-files", [join(IMPORTED, "adapter_config.json"), join(IMPORTED, "adapter_model.safetensors")]);
  await page.waitForSelector('#library-list li[data-name="peft-files"]', { timeout: 120_000 });
  assert.equal((await listed(page))["peft-files"], lib["peft-import"]);
  page.once("dialog", (d) => d.accept());
  await page.click('#library-list li[data-name="peft-files"] button:has-text("Delete")');
  await page.waitForSelector('#library-list li[data-name="peft-files"]', { state: "detached", timeout: 60_000 });

  // An adapter of another base (the tiny Llama's) is refused with the file and tensor named.
  const refused = await page.evaluate(
    (url) => window.weblora.client.loadAdapter(url).then(() => null, (e) => ({ kind: e.kind, message: e.message })),
    `${b.origin}/fixtures/mix/adapter_b/`,
  );
  console.log(`another base's adapter: ${JSON.stringify(refused)}`);
  assert.equal(refused?.kind, "lora");
  assert.match(refused.message, /^LoRA: adapter_b\/adapter_model\.safetensors: .*layers\.0\.self_attn\.q_proj\.lora_A\.weight has \d+ values, expected \(6, 576\)/);
  assert.deepEqual(Object.keys(await listed(page)), ["pirate", "shout", "peft-import"], "nothing kept of it");

  // The two runs trained on different data: different adapters.
  const [pirateDir, shoutDir] = [await saveFiles(page, "pirate"), await saveFiles(page, "shout")];
  const [pirate, shout] = [tensors(join(pirateDir, "adapter_model.safetensors")), tensors(join(shoutDir, "adapter_model.safetensors"))];
  const key = "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight";
  assert.notEqual(pirate[key].data, shout[key].data, "two datasets, two adapters");

  // Side by side: the base and the three, from one decoder.
  await page.fill("#prompt", PROMPT);
  await page.fill("#max-new-tokens", String(NEW_TOKENS));
  for (const name of ["pirate", "shout", "peft-import"]) await page.check(`#library-list li[data-name="${name}"] input.pick`);
  await page.click("#compare");
  await page.waitForSelector('#compare-answers[data-done="true"]', { timeout: 900_000 });
  const side = await page.evaluate(() =>
    [...document.querySelectorAll("#compare-answers figure")].map((f) => [f.dataset.adapter || null, f.querySelector(".answer-text").textContent]),
  );
  await page.screenshot({ path: join(shots, "7-side-by-side.png"), fullPage: true });
  console.log(`side by side: ${JSON.stringify(side)}`);
  assert.deepEqual(side.map(([a]) => a), [null, "pirate", "shout", "peft-import"]);
  for (const [adapter, text] of side) assert.equal(await alone(page, adapter), text, `${adapter ?? "the base"} answers alone as side by side`);
  const answer = Object.fromEntries(side);
  assert.notEqual(answer["peft-import"], answer[null], "the imported adapter changes the answer");

  // The imported adapter answers in the page as it does natively.
  const native = JSON.parse(
    execFileSync(nativeCli(), ["generate", "--model", demoModel, "--adapter", IMPORTED, "--prompt", PROMPT, "--max-new-tokens", String(NEW_TOKENS), "--json"], {
      stdio: ["ignore", "pipe", "inherit"],
    }).toString("utf8"),
  );
  assert.equal(native[0].text, answer["peft-import"], "the browser's import answers as the native CLI with the same folder");

  // A mix of a trained adapter and the imported one (PEFT mixes no DoRA adapters), as `weblora
  // mix` makes it natively from their files.
  await page.uncheck('#library-list li[data-name="shout"] input.pick');
  await page.fill('#library-list li[data-name="pirate"] input.weight', "0.7");
  await page.fill('#library-list li[data-name="peft-import"] input.weight', "0.3");
  await page.fill("#mix-name", "blend");
  await page.click("#mix");
  await page.waitForSelector('#library-list li[data-name="blend"]', { timeout: 300_000 });
  assert.match((await listed(page)).blend, /^r 8 · α 8 · all linear · /, "ranks 4 + 4, alpha = rank, as PEFT's cat");
  const nativeMix = join(work, "native-mix");
  execFileSync(nativeCli(), ["mix", "--adapter", `${pirateDir}:0.7`, "--adapter", `${IMPORTED}:0.3`, "--out", nativeMix], { stdio: ["ignore", "ignore", "inherit"] });
  const blend = tensors(join(await saveFiles(page, "blend"), "adapter_model.safetensors"));
  assert.deepEqual(blend, tensors(join(nativeMix, "adapter_model.safetensors")), "the page's mix is the native mix, bit for bit");

  page.once("dialog", (d) => d.accept());
  await page.click('#library-list li[data-name="blend"] button:has-text("Delete")');
  await page.waitForSelector('#library-list li[data-name="blend"]', { state: "detached", timeout: 60_000 });

  // After a reload the library is still there: listed at once, loaded with the model.
  await page.reload();
  await page.waitForFunction(() => document.querySelectorAll("#library-list li").length === 3, null, { timeout: 120_000 });
  await loadModel(page);
  await page.waitForFunction(() => [...document.querySelectorAll("#library-list input.pick")].every((b) => !b.disabled), null, { timeout: 120_000 });
  assert.deepEqual(Object.keys(await listed(page)), ["pirate", "shout", "peft-import"]);
  assert.equal(await alone(page, "shout"), answer.shout, "a kept adapter answers after a reload as before");
  assert.equal(await alone(page, "peft-import"), answer["peft-import"]);
  await page.screenshot({ path: join(shots, "8-library-after-reload.png"), fullPage: true });
});
