// Builds the browser package: the crate compiled for wasm32-unknown-unknown (release unless
// WEBLORA_WASM_PROFILE=dev), then wasm-bindgen's JavaScript glue and types into web/pkg; and
// fetches the demo model into cache/. The tools come from scripts/setup.sh (`npm start` runs it
// first); cargo's bin folder is searched even when it is not on PATH. No wasm-opt pass: Debian's
// wasm-opt breaks wasm-bindgen's output. A failure ends with one plain line, not a stack trace.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const cargoBin = join(process.env.CARGO_HOME || join(homedir(), ".cargo"), "bin");
const env = { ...process.env, PATH: [cargoBin, process.env.PATH].join(delimiter) };

const fail = (message) => {
  console.error(`build-web: ${message}`);
  process.exit(1);
};
const onPath = (cmd) => env.PATH.split(delimiter).some((dir) => dir && existsSync(join(dir, cmd)));
const run = (cmd, args) => {
  try {
    execFileSync(cmd, args, { cwd: root, env, stdio: ["ignore", "inherit", "inherit"] });
  } catch (e) {
    if (e.code === "ENOENT") fail(`${cmd} not found`);
    const why = e.status != null ? `exit status ${e.status}` : (e.signal ?? e.message);
    fail(`\`${cmd} ${args.join(" ")}\` failed (${why}; its output is above)`);
  }
};

for (const tool of ["cargo", "wasm-bindgen"]) {
  if (!onPath(tool)) {
    fail(`${tool} is not on PATH nor in ${cargoBin}: run \`bash scripts/setup.sh\` (npm start and npm test do)`);
  }
}
run("bash", ["scripts/fetch_model.sh"]);
const dev = process.env.WEBLORA_WASM_PROFILE === "dev";
const target = "wasm32-unknown-unknown";
run("cargo", ["rustc", "-p", "weblora", "--lib", "--crate-type", "cdylib", "--target", target, ...(dev ? [] : ["--release"])]);
const targetDir = process.env.CARGO_TARGET_DIR || join(root, "target");
const wasm = join(targetDir, target, dev ? "debug" : "release", "weblora.wasm");
run("wasm-bindgen", [wasm, "--target", "web", "--out-dir", join(root, "web/pkg"), "--out-name", "weblora"]);
