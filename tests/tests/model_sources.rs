//! Models read from every native source: a Hugging Face folder and a GGUF file served over HTTP
//! (a loopback server in this test) load the same weights and tokenizer as from disk, with
//! progress up to the file size, and are planned from their headers alone to the same memory;
//! a missing URL is a clear error; `--model` arguments parse.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use weblora::model::load::{self, LoadOptions, ModelSource};
use weblora::model::memory::Limits;
use weblora::model::{Model, WeightMemory};
use weblora_tests::fixture::fixture_dir;
use weblora_tests::gpu;
use weblora_tests::smollm2::gguf_path;

/// Serves files below `root` over HTTP/1.1 on 127.0.0.1, one request a connection, for as
/// long as the test process lives. Returns the base URL.
fn serve(root: PathBuf) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut first = String::new();
            if reader.read_line(&mut first).is_err() {
                continue;
            }
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let path = first.split_whitespace().nth(1).unwrap_or("/").trim_start_matches('/').to_string();
            let file = root.join(&path);
            let _ = match (path.contains(".."), std::fs::read(&file)) {
                (false, Ok(bytes)) => stream
                    .write_all(
                        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", bytes.len())
                            .as_bytes(),
                    )
                    .and_then(|()| stream.write_all(&bytes)),
                _ => stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
            };
        }
    });
    url
}

fn all_f32(model: &Model) -> Vec<(String, Vec<f32>)> {
    model
        .weights
        .named()
        .into_iter()
        .filter_map(|(name, w)| Some((name.clone(), pollster::block_on(w.read_f32(gpu(), &name)).ok()?)))
        .collect()
}

#[test]
fn a_folder_over_http_loads_the_same_weights_as_from_disk() {
    let g = gpu();
    let dir = fixture_dir("tiny/llama_tied");
    let base = serve(dir.parent().unwrap().to_path_buf());
    let source = ModelSource::parse(&format!("{base}llama_tied")).unwrap();
    assert_eq!(source, ModelSource::FolderUrl(format!("{base}llama_tied/")));
    let mut seen = Vec::new();
    let remote =
        load::load_from(g, &source, LoadOptions::default(), &mut |f, p| seen.push((f.to_string(), p))).unwrap();
    let local = load::load_hf_folder(g, &dir).unwrap();
    assert_eq!(format!("{:?}", remote.config), format!("{:?}", local.config));
    let (a, b) = (all_f32(&remote), all_f32(&local));
    assert_eq!(a.len(), b.len());
    assert!(a == b, "every weight is bit-identical");
    let size = std::fs::metadata(dir.join("model.safetensors")).unwrap().len();
    let (file, last) = seen.last().unwrap();
    assert!(file.ends_with("llama_tied/model.safetensors"));
    assert_eq!((last.consumed, last.total), (size, Some(size)), "progress ends at the file size");

    // Planned from the URL's config.json alone, as from the folder on disk and as loaded.
    let limits = Limits::of(&g.info);
    let planned = load::model_memory(&source, LoadOptions::default(), &limits).unwrap();
    let on_disk = load::model_memory(&ModelSource::Folder(dir), LoadOptions::default(), &limits).unwrap();
    assert_eq!(planned.weights, on_disk.weights);
    assert_eq!(format!("{:?}", planned.config), format!("{:?}", on_disk.config));
    assert_eq!(planned.weights, WeightMemory::of(&local.weights));
}

#[test]
fn a_gguf_over_http_loads_the_same_model_and_tokenizer() {
    let g = gpu();
    let path = gguf_path();
    let base = serve(path.parent().unwrap().to_path_buf());
    let url = format!("{base}{}", path.file_name().unwrap().to_string_lossy());
    let source = ModelSource::parse(&url).unwrap();
    assert!(source.is_gguf());
    let mut last = None;
    let remote = load::load_from(g, &source, LoadOptions::default(), &mut |_, p| last = Some(p)).unwrap();
    let local = load::load_gguf(g, &path).unwrap();
    assert_eq!(format!("{:?}", remote.config), format!("{:?}", local.config));
    assert_eq!(all_f32(&remote), all_f32(&local), "the f32 tensors (embeddings, norms) are bit-identical");
    assert_eq!(remote.weights.gpu_bytes(), local.weights.gpu_bytes());
    let size = std::fs::metadata(&path).unwrap().len();
    assert_eq!(last.map(|p| (p.consumed, p.total)), Some((size, Some(size))));
    // Planned from the URL's header alone, as from the file on disk and as loaded.
    let limits = Limits::of(&g.info);
    let planned = load::model_memory(&source, LoadOptions::default(), &limits).unwrap();
    let on_disk = load::model_memory(&ModelSource::GgufFile(path.clone()), LoadOptions::default(), &limits).unwrap();
    assert_eq!(planned.weights, on_disk.weights);
    assert_eq!(format!("{:?}", planned.config), format!("{:?}", on_disk.config));
    assert_eq!(planned.weights, WeightMemory::of(&local.weights));

    let (tok_remote, template_remote) = load::tokenizer_from(&source).unwrap();
    let (tok_local, template_local) = load::load_tokenizer(&path).unwrap();
    let text = "Arr, matey! 1234 tokens — ünïcode.";
    assert_eq!(tok_remote.encode(text, false).unwrap(), tok_local.encode(text, false).unwrap());
    assert_eq!(template_remote, template_local);
}

#[test]
fn a_missing_url_names_the_url_and_the_status() {
    let base = serve(std::env::temp_dir().join("weblora-no-such-folder"));
    let url = format!("{base}missing.gguf");
    let err = load::load_from(gpu(), &ModelSource::parse(&url).unwrap(), LoadOptions::default(), &mut |_, _| {})
        .err()
        .expect("a 404 is an error")
        .to_string();
    assert!(err.contains(&url) && err.contains("404"), "{err}");
    let err = load::load_from(
        gpu(),
        &ModelSource::parse(&format!("{base}folder/")).unwrap(),
        LoadOptions::default(),
        &mut |_, _| {},
    )
    .err()
    .expect("a folder without config.json is an error")
    .to_string();
    assert!(err.contains("config.json") && err.contains("404"), "{err}");
}

#[test]
fn model_arguments_parse() {
    let folder = fixture_dir("tiny/llama_tied");
    assert_eq!(ModelSource::parse(&folder.to_string_lossy()).unwrap(), ModelSource::Folder(folder.clone()));
    let file = folder.join("config.json");
    assert_eq!(ModelSource::parse(&file.to_string_lossy()).unwrap(), ModelSource::GgufFile(file));
    assert_eq!(
        ModelSource::parse("HuggingFaceTB/SmolLM2-135M-Instruct").unwrap(),
        ModelSource::FolderUrl("https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct/resolve/main/".into())
    );
    assert_eq!(
        ModelSource::parse("https://example.org/m/model.Q4_0.gguf?download=true").unwrap(),
        ModelSource::GgufUrl("https://example.org/m/model.Q4_0.gguf?download=true".into())
    );
    let missing = Path::new("/no/such/model.gguf");
    let err = ModelSource::parse(&missing.to_string_lossy()).unwrap_err().to_string();
    assert!(err.contains("/no/such/model.gguf") && err.contains("no such file"), "{err}");
}
