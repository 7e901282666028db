//! The real test model, SmolLM2-135M-Instruct (Q4_1 GGUF), and the reference numbers that
//! transformers and PEFT computed from the same file (`tests/fixtures/reference/`, remade by its
//! `make_reference.py`).

use std::path::PathBuf;

use crate::fixture::fixture_dir;

/// The GGUF file of `scripts/fetch_model.sh`, fetched on first use.
pub fn gguf_path() -> PathBuf {
    crate::model_file::smollm2_gguf()
}

/// A file of `tests/fixtures/reference/`.
pub fn reference(name: &str) -> PathBuf {
    let p = fixture_dir("reference").join(name);
    assert!(p.exists(), "reference file {} is missing", p.display());
    p
}
