//! Tests of the data path, on SmolLM2-135M-Instruct's real tokenizer and chat template (the
//! test model, fetched on first use).

mod batching;
mod errors;
mod formats;
mod fuzz;
mod template;
mod tools;
mod vendor;

use std::sync::OnceLock;

use super::{ChatTemplate, DataOptions, Dataset, Example};
use crate::io::{read_gguf_header, GgufHeader};
use crate::tokenizer::Tokenizer;

pub(super) struct Model {
    pub header: GgufHeader,
    pub tokenizer: Tokenizer,
    pub template: ChatTemplate,
}

pub(super) fn smollm2() -> &'static Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(|| {
        let path = crate::model_file::smollm2_gguf();
        let header = read_gguf_header(&path).unwrap();
        let tokenizer = Tokenizer::from_gguf(&header).unwrap();
        let template = ChatTemplate::from_gguf(&header).unwrap().expect("SmolLM2 has a chat template");
        Model { header, tokenizer, template }
    })
}

/// Loads `text` as the file `file` with SmolLM2 and its template.
pub(super) fn load(file: &str, text: &str, options: &DataOptions) -> Result<Dataset, super::DataError> {
    let m = smollm2();
    Dataset::load(file, text.as_bytes(), &m.tokenizer, Some(&m.template), options)
}

pub(super) fn ids(text: &str) -> Vec<u32> {
    smollm2().tokenizer.encode(text, false).unwrap()
}

/// The example built from (text, supervised) pieces, each tokenized on its own.
pub(super) fn expected(pieces: &[(&str, bool)]) -> (Vec<u32>, Vec<bool>) {
    let (mut i, mut m) = (Vec::new(), Vec::new());
    for (text, sup) in pieces {
        let t = ids(text);
        m.extend(std::iter::repeat_n(*sup, t.len()));
        i.extend(t);
    }
    (i, m)
}

/// The supervised tokens of `e`, decoded run by run.
pub(super) fn supervised_text(e: &Example) -> Vec<String> {
    let tok = &smollm2().tokenizer;
    let mut out = Vec::new();
    let mut run = Vec::new();
    for (k, (&id, &m)) in e.ids.iter().zip(&e.mask).enumerate() {
        if m && k > 0 {
            run.push(id);
        } else if !run.is_empty() {
            out.push(tok.decode(&std::mem::take(&mut run), false).unwrap());
        }
    }
    if !run.is_empty() {
        out.push(tok.decode(&run, false).unwrap());
    }
    out
}

pub(super) const SYSTEM_DEFAULT: &str =
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n";
