//! Bad model folders give typed errors that name the file and tensor: a missing tensor, a shape
//! that disagrees with config.json, an unsupported architecture, a truncated weights file.

use std::path::{Path, PathBuf};

use weblora::model::load;
use weblora_tests::fixture::fixture_dir;
use weblora_tests::gpu;

/// A copy of the tiny Llama fixture folder, to break.
fn copy_fixture(name: &str) -> PathBuf {
    let src = fixture_dir("tiny/llama_tied");
    let dst = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dst);
    std::fs::create_dir_all(&dst).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(src.join(f), dst.join(f)).unwrap();
    }
    dst
}

fn load_err(dir: &Path) -> String {
    match load::load_hf_folder(gpu(), dir) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e.to_string(),
    }
}

fn edit_config(dir: &Path, f: impl Fn(&mut serde_json::Value)) {
    let path = dir.join("config.json");
    let mut j: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    f(&mut j);
    std::fs::write(path, j.to_string()).unwrap();
}

#[test]
fn bad_model_folders_give_typed_errors() {
    // config.json says the layers are wider than the weights are.
    let dir = copy_fixture("bad-shape");
    edit_config(&dir, |j| j["intermediate_size"] = 64.into());
    let err = load_err(&dir);
    assert!(err.contains("mlp.") && err.contains("the config says"), "{err}");

    // A third layer the file does not have.
    let dir = copy_fixture("missing-tensor");
    edit_config(&dir, |j| j["num_hidden_layers"] = 3.into());
    let err = load_err(&dir);
    assert!(err.contains("model.layers.2.") && err.contains("missing"), "{err}");

    // An untied config needs lm_head.weight, which a tied model's file lacks.
    let dir = copy_fixture("untied-without-head");
    edit_config(&dir, |j| j["tie_word_embeddings"] = false.into());
    assert!(load_err(&dir).contains("lm_head.weight"));

    let dir = copy_fixture("arch");
    edit_config(&dir, |j| j["model_type"] = "gpt2".into());
    let err = load_err(&dir);
    assert!(err.contains("config.json") && err.contains("gpt2"), "{err}");

    let dir = copy_fixture("truncated");
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    std::fs::write(dir.join("model.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    let err = load_err(&dir);
    assert!(err.contains("model.safetensors"), "{err}");

    let dir = copy_fixture("bad-json");
    std::fs::write(dir.join("config.json"), "{\"hidden_size\": ").unwrap();
    assert!(load_err(&dir).contains("config.json"));
}
