// The `weblora` npm package embedded in a minimal page of its own (tests/browser/embed/): WebGPU
// detection, a model streamed from a URL and cached, a dataset, training through the API with
// stop and resume from the OPFS checkpoint after a reload, generation, PEFT and GGUF export, and
// the first two steps again with the tiled kernel family.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { open } from "./browser.mjs";

const MODEL = "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
const DATA = [
  { messages: [{ role: "user", content: "Hi" }, { role: "assistant", content: "Ahoy, matey!" }] },
  { messages: [{ role: "user", content: "Bye" }, { role: "assistant", content: "Fair winds!" }] },
  { messages: [{ role: "user", content: "Who are you?" }, { role: "assistant", content: "A pirate, arr." }] },
]
  .map((r) => JSON.stringify(r))
  .join("\n");
const SETTINGS = { rank: 4, alpha: 8, dropout: 0, targets: ["q_proj", "v_proj"], lr: 1e-3, maxSteps: 3, batchSize: 1, seed: 7 };

let b;
before(async () => {
  b = await open();
});
after(async () => {
  await b?.close();
});

test("the package trains through its API, stops, and resumes from its checkpoint after a reload", { timeout: 1_200_000 }, async (t) => {
  const { page } = b;
  await page.goto(new URL("/embed/", b.server.url).href);
  await page.waitForFunction(() => window.embed);
  const webgpu = await page.evaluate(() => window.embed.checkWebGPU());
  assert.equal(webgpu.ok, true, webgpu.message);
  const gpu = await page.evaluate(() => window.embed.connect());
  assert.match(gpu.backend, /WebGpu/i, `the engine runs on WebGPU: ${JSON.stringify(gpu)}`);
  assert.equal(gpu.kernels, "cpu", `SwiftShader is a software adapter, so "auto" picks the CPU kernels: ${JSON.stringify(gpu)}`);

  const info = await page.evaluate((url) => window.embed.loadModel(url), MODEL);
  assert.equal(info.architecture, "llama");
  assert.equal(info.layers, 30);
  assert.equal(info.vocabSize, 49152);
  const progress = await page.evaluate(() => window.embed.log.progress);
  const last = progress.at(-1);
  assert.ok(last.total > 90e6 && last.loaded === last.total, `progress ends at the file size: ${JSON.stringify(last)}`);

  const summary = await page.evaluate(([d]) => window.embed.loadData(d, { seqLen: 64, seed: 7 }, "tiny.jsonl"), [DATA]);
  assert.equal(summary.examples, 3);
  assert.ok(summary.supervised_tokens > 0 && summary.supervised_tokens < summary.tokens);
  assert.ok(summary.first_example.spans.some((s) => s.supervised && s.text.includes("Ahoy")));

  // Stop once step 1 is in; the run ends at the step it was on, with a checkpoint there.
  const first = await page.evaluate((s) => window.embed.train(s, { checkpointEvery: 1, stopAtStep: 1 }), SETTINGS);
  assert.equal(first.stopped, true);
  assert.equal(first.totalSteps, 3);
  const stoppedAt = first.step;
  assert.ok(stoppedAt >= 1 && stoppedAt < 3, `stopped at ${stoppedAt}`);
  const steps = await page.evaluate(() => window.embed.log.steps);
  for (const s of steps) assert.ok(Number.isFinite(s.loss) && s.loss > 0, `finite loss ${s.loss}`);
  const ck = await page.evaluate(() => window.embed.checkpointInfo());
  assert.equal(ck.step, stoppedAt);

  const answer = await page.evaluate(() => window.embed.generate("Hi", { adapter: true, maxNewTokens: 4 }));
  assert.equal(typeof answer.text, "string");
  assert.ok(answer.tokens >= 1 && answer.tokens <= 4);

  // A reload: the model comes from the cache, not the network, and training picks up after the checkpoint.
  await page.reload();
  await page.waitForFunction(() => window.embed);
  await page.evaluate((url) => window.embed.loadModel(url), MODEL);
  const downloads = b.requests.filter((u) => u.endsWith(MODEL));
  assert.equal(downloads.length, 1, `the model was downloaded once, then read from the cache: ${downloads.length}`);
  await page.evaluate(([d]) => window.embed.loadData(d, { seqLen: 64, seed: 7 }, "tiny.jsonl"), [DATA]);
  const resumed = await page.evaluate((s) => window.embed.train(s, { resume: true, checkpointEvery: 1 }), SETTINGS);
  assert.equal(resumed.stopped, false);
  assert.equal(resumed.step, 3);
  const resumedSteps = await page.evaluate(() => window.embed.log.steps);
  const after = resumedSteps.map((s) => s.step);
  assert.deepEqual(after, Array.from({ length: 3 - stoppedAt }, (_, i) => stoppedAt + 1 + i));
  const cpuLoss = new Map([...steps, ...resumedSteps].map((s) => [s.step, s.loss]));

  const peft = await page.evaluate(() => window.embed.exportPeft());
  assert.equal(peft.config.r, 4);
  assert.deepEqual([...peft.config.target_modules].sort(), ["q_proj", "v_proj"]);
  const keys = Object.keys(peft.header).filter((k) => k !== "__metadata__");
  assert.equal(keys.length, 30 * 2 * 2);
  const q = peft.header["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"];
  assert.deepEqual(q.shape, [4, 576]);
  assert.deepEqual(peft.header["base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight"].shape, [192, 4]);

  const gguf = await page.evaluate(() => window.embed.exportGguf());
  assert.equal(gguf.magic, "GGUF", "a llama.cpp adapter file");
  assert.ok(gguf.bytes > peft.bytes / 2, `it holds the adapter (${gguf.bytes} bytes)`);

  // The tiled kernels (the family for GPUs) on SwiftShader give the loss of step 2 that the
  // default family gave: that loss follows the first update, and every product (the demo
  // model's quantized projections, embedding and head too), the attention and the loss run the
  // tiled family's kernels, which sum in other orders.
  await page.reload();
  await page.waitForFunction(() => window.embed);
  const tiledGpu = await page.evaluate(() => window.embed.connect({ kernels: "tiled" }));
  assert.equal(tiledGpu.kernels, "tiled");
  await page.evaluate((url) => window.embed.loadModel(url), MODEL);
  await page.evaluate(([d]) => window.embed.loadData(d, { seqLen: 64, seed: 7 }, "tiny.jsonl"), [DATA]);
  await page.evaluate((s) => window.embed.train(s, { stopAtStep: 2 }), SETTINGS);
  const tiledSteps = await page.evaluate(() => window.embed.log.steps);
  const tiled = tiledSteps.find((s) => s.step === 2);
  assert.ok(tiled, `the tiled run reached step 2: ${JSON.stringify(tiledSteps)}`);
  const cpu = cpuLoss.get(2);
  t.diagnostic(`${JSON.stringify(gpu)}; loss of step 2: tiled kernels ${tiled.loss}, CPU kernels ${cpu} (|diff| ${Math.abs(tiled.loss - cpu)})`);
  // Measured on SwiftShader: |diff| 1.9e-5 (4.0774717 against 4.0774527); 2.9e-6 while only
  // the f32 matmuls were tiled.
  assert.ok(Math.abs(tiled.loss - cpu) <= 2e-4, `tiled kernels: loss ${tiled.loss}, CPU kernels ${cpu}`);
  assert.notEqual(tiledSteps[0].loss, tiled.loss, "the first update changed the loss");

  for (const u of b.requests) assert.equal(new URL(u).origin, b.origin, `no request leaves the page's origin: ${u}`);
});
