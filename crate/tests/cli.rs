//! Bad input to the command line gives one clear line on stderr and a non-zero exit, never a
//! backtrace.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Finds the real test model, fetching it on first use.
#[path = "../../tests/src/model_file.rs"]
mod model_file;

fn model() -> PathBuf {
    model_file::smollm2_gguf()
}

/// Runs `weblora args…` and returns (exit code, stderr).
fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_weblora")).args(args).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn tmp_file(name: &str, text: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn assert_one_clear_line(what: &str, (code, err): (i32, String), needle: &str) {
    assert_ne!(code, 0, "{what}: exit code");
    assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"), "{what}: {err}");
    assert!(err.contains(needle), "{what}: expected {needle:?} in {err:?}");
    assert!(err.trim().lines().count() <= 3, "{what}: {err}");
}

#[test]
fn bad_input_gives_one_clear_line() {
    let m = model();
    let m = m.to_str().unwrap();
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-out");
    let out = out.to_str().unwrap();
    let good = tmp_file("good.jsonl", "{\"prompt\": \"Hi\", \"completion\": \" there\"}\n");
    let good = good.to_str().unwrap();

    assert_one_clear_line("missing model", run(&["inspect", "--model", "/no/such/model.gguf"]), "/no/such/model.gguf");
    assert_one_clear_line(
        "missing data",
        run(&["data", "--model", m, "--data", "/no/such/data.jsonl"]),
        "/no/such/data.jsonl",
    );
    let (code, err) = run(&["train", "--model", m, "--data", good, "--out", out, "--no-such-flag"]);
    assert_ne!(code, 0);
    assert!(err.contains("--no-such-flag") && !err.contains("panicked"), "{err}");
    let bad_json = tmp_file("bad.jsonl", "{\"text\": \"fine\"}\n{\"text\": oops}\n");
    assert_one_clear_line(
        "malformed line",
        run(&["data", "--model", m, "--data", bad_json.to_str().unwrap()]),
        "line 2",
    );
    let no_answer = tmp_file("no_answer.jsonl", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n");
    assert_one_clear_line(
        "no assistant turn",
        run(&["data", "--model", m, "--data", no_answer.to_str().unwrap()]),
        "line 1",
    );
    // Every completion is cut away by an 8-token limit: nothing is left to learn.
    let long = tmp_file(
        "long_prompt.jsonl",
        "{\"prompt\": \"one two three four five six seven eight nine ten\", \"completion\": \" eleven\"}\n",
    );
    assert_one_clear_line(
        "no supervised tokens",
        run(&["train", "--model", m, "--data", long.to_str().unwrap(), "--out", out, "--seq-len", "8"]),
        "no usable examples",
    );
    assert_one_clear_line(
        "rank too large",
        run(&["train", "--model", m, "--data", good, "--out", out, "--rank", "5000"]),
        "rank 5000",
    );
    assert_one_clear_line(
        "unknown target",
        run(&["train", "--model", m, "--data", good, "--out", out, "--targets", "qq_proj"]),
        "qq_proj",
    );
}
