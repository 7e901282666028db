// The browser benchmark: in headless Chromium on this machine, the time from page load to the
// first training step with the demo model and the sample data, and the training tokens/s;
// beside them the native CLI (`weblora train`, same settings) on the same machine.
//
//   npm run build && cargo build --release -p weblora && node scripts/bench-web.mjs [--steps N]
import { spawn } from "node:child_process";
import { cpus } from "node:os";
import { join } from "node:path";
import { demoModel, nativeCli, open, root } from "../tests/browser/browser.mjs";

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const steps = Number(arg("steps", 3));
const batch = Number(arg("batch", 4));
const seqLen = Number(arg("seq-len", 256));
const data = join(root, "data", "pirate_chat.jsonl");

async function browserRun() {
  const b = await open();
  try {
    const { page } = b;
    const t0 = Date.now();
    await page.goto(b.server.url);
    await page.waitForSelector("#load-model:not([disabled])");
    await page.click("#load-model");
    await page.waitForFunction(() => document.querySelector("#model-status")?.textContent.includes("Loaded"), null, { timeout: 0 });
    const loaded = Date.now();
    const settings = { "max-steps": steps, "batch-size": batch, "seq-len": seqLen, lr: "0.001", "eval-split": 0, "eval-every": 0 };
    for (const [id, value] of Object.entries(settings)) await page.fill(`#${id}`, String(value));
    await page.waitForSelector('#data-summary[data-ready="true"]', { timeout: 0 });
    await page.click("#train");
    await page.waitForFunction(() => window.weblora?.steps?.length >= 1, null, { timeout: 0, polling: 100 });
    const first = Date.now();
    await page.waitForFunction((n) => window.weblora?.steps?.length >= n, steps, { timeout: 0, polling: 500 });
    const all = await page.evaluate(() => window.weblora.steps);
    const gpu = await page.evaluate(() => window.weblora.client?.gpu ?? null);
    return { loadSeconds: (loaded - t0) / 1000, firstStepSeconds: (first - t0) / 1000, steps: all, gpu };
  } finally {
    await b.close();
  }
}

function nativeRun() {
  const args = ["train", "--model", demoModel, "--data", data, "--out", join(root, "target", "bench-web-native"),
    "--max-steps", String(steps), "--batch-size", String(batch), "--seq-len", String(seqLen), "--lr", "0.001"];
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const child = spawn(nativeCli(), args, { stdio: ["ignore", "pipe", "inherit"] });
    let firstStep = null;
    const lines = [];
    child.stdout.on("data", (d) => {
      for (const line of d.toString().split("\n")) {
        if (line.startsWith("update ") && firstStep === null) firstStep = (Date.now() - t0) / 1000;
        if (line.trim()) lines.push(line);
      }
    });
    child.on("exit", (code) => {
      if (code !== 0) return reject(new Error(`weblora train exited with ${code}`));
      const tps = lines.map((l) => l.match(/([\d.]+) tok\/s/)).filter(Boolean).map((m) => Number(m[1]));
      resolve({ firstStepSeconds: firstStep, tokensPerSecond: tps.at(-1), lines });
    });
  });
}

const web = await browserRun();
const native = await nativeRun();
const webTps = web.steps.at(-1).tokensPerSecond;
console.log(`machine: ${cpus().length} × ${cpus()[0]?.model}; native: ${nativeCli()}; browser adapter: ${JSON.stringify(web.gpu)}`);
console.log(`demo model, data/pirate_chat.jsonl, batch ${batch}, seq ≤ ${seqLen}, ${steps} updates, r=8 all-linear`);
console.log(`browser: page load → model loaded ${web.loadSeconds.toFixed(1)} s, → first step ${web.firstStepSeconds.toFixed(1)} s, ${webTps.toFixed(1)} tok/s`);
console.log(`native:  process start → first step ${native.firstStepSeconds?.toFixed(1)} s, ${native.tokensPerSecond?.toFixed(1)} tok/s`);
console.log(`browser / native tokens/s: ${(webTps / native.tokensPerSecond).toFixed(2)}`);
