//! The real test model, SmolLM2-135M-Instruct (Q4_1 GGUF), and the reference numbers that
//! transformers computed from the same file (`../shared/reference/`).

use std::path::{Path, PathBuf};

/// The GGUF file fetched by `scripts/fetch_model.sh`.
pub fn gguf_path() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(p.exists(), "{} is missing: run scripts/fetch_model.sh", p.display());
    p
}

/// A file of the reference folder beside the repository (`shared/reference/`).
pub fn reference(name: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for base in ["../shared/reference", "shared/reference"] {
        let p = root.join(base).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("reference file {name} not found in ../shared/reference");
}
