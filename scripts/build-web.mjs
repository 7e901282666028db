// Builds the browser package: the wasm engine with wasm-pack into web/pkg (release, wasm-opt
// off: see the crate's Cargo.toml), and fetches the demo model into cache/.
import { execFileSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const run = (cmd, args) => execFileSync(cmd, args, { cwd: root, stdio: ["ignore", "inherit", "inherit"] });

run("bash", ["scripts/fetch_model.sh"]);
const profile = process.env.WEBLORA_WASM_PROFILE === "dev" ? "--dev" : "--release";
run("wasm-pack", ["build", "crate", "--target", "web", profile, "--no-pack", "--out-dir", "../web/pkg", "--out-name", "weblora"]);
