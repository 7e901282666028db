//! What a model URL or Hugging Face repo id names: one GGUF file, or a folder of files (config.json,
//! safetensors, tokenizer) under a base URL. The CLI and the browser read `--model` arguments and
//! the page's model field with this one function.

use crate::error::{Error, Result};

/// Whether a model URL names a GGUF file or a folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemoteKind {
    Gguf,
    /// A folder of Hugging Face files; its URL ends in `/`.
    Folder,
}

/// A model's location on the web.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelUrl {
    pub kind: RemoteKind,
    /// The GGUF file's URL, or the folder's base URL (ending in `/`).
    pub url: String,
    /// How messages and the page name it: the repo id, or the file or folder name.
    pub name: String,
}

const HF: &str = "https://huggingface.co";

/// Whether `text` is a Hugging Face repo id, `owner/name`.
pub(crate) fn is_repo_id(text: &str) -> bool {
    let parts: Vec<&str> = text.split('/').collect();
    let word = |p: &str| {
        !p.is_empty() && !p.starts_with('.') && p.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    parts.len() == 2 && parts.iter().all(|p| word(p)) && !text.to_ascii_lowercase().ends_with(".gguf")
}

/// Reads a model URL: an `http(s)` URL of a `.gguf` file, of a folder (a URL not naming a `.gguf`
/// file is taken as a folder), or of a Hugging Face repository page (`owner/name`, `/tree/REV/…`
/// or `/resolve/REV/…`, read from `resolve/REV/`); a repo id `owner/name`; or, with `base`, a URL
/// relative to it (as a page resolves links).
pub fn parse_model_url(text: &str, base: Option<&str>) -> Result<ModelUrl> {
    let text = text.trim();
    if is_repo_id(text) {
        return Ok(ModelUrl { kind: RemoteKind::Folder, url: format!("{HF}/{text}/resolve/main/"), name: text.into() });
    }
    let absolute = if has_http_scheme(text) {
        text.to_string()
    } else if let Some(base) = base.filter(|b| has_http_scheme(b)) {
        resolve_relative(text, base)
    } else {
        return Err(Error::Setting {
            name: "model".into(),
            detail: format!(
                "{text:?} is not an http(s) URL of a .gguf file or a folder, nor a Hugging Face repo id (owner/name)"
            ),
        });
    };
    // The path without query or fragment; the URL itself keeps them.
    let path_end = absolute.find(['?', '#']).unwrap_or(absolute.len());
    let (origin, path) = split_origin(&absolute[..path_end]);
    if path.to_ascii_lowercase().ends_with(".gguf") {
        let name = percent_decode(path.rsplit('/').next().unwrap_or(path));
        return Ok(ModelUrl { kind: RemoteKind::Gguf, url: absolute, name });
    }
    if origin.ends_with("huggingface.co") {
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let repo = |s: &[&str]| format!("{}/{}", s[0], s[1]);
        match segments.as_slice() {
            [_, _] => {
                let name = repo(&segments);
                return Ok(ModelUrl { kind: RemoteKind::Folder, url: format!("{origin}/{name}/resolve/main/"), name });
            }
            [_, _, "resolve" | "tree", rev, sub @ ..] => {
                let name = repo(&segments);
                let sub: String = sub.iter().map(|s| format!("{s}/")).collect();
                return Ok(ModelUrl {
                    kind: RemoteKind::Folder,
                    url: format!("{origin}/{name}/resolve/{rev}/{sub}"),
                    name,
                });
            }
            _ => {}
        }
    }
    let name =
        percent_decode(path.trim_end_matches('/').rsplit('/').next().filter(|s| !s.is_empty()).unwrap_or(origin));
    let url =
        if path.ends_with('/') { absolute } else { format!("{}/{}", &absolute[..path_end], &absolute[path_end..]) };
    Ok(ModelUrl { kind: RemoteKind::Folder, name, url })
}

fn has_http_scheme(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// `scheme://host[:port]` and the rest (the path, starting with `/` or empty).
fn split_origin(url: &str) -> (&str, &str) {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let path_start = url[after_scheme..].find('/').map_or(url.len(), |i| after_scheme + i);
    url.split_at(path_start)
}

/// `text` resolved against the absolute URL `base`: an absolute path replaces the base's path,
/// anything else replaces its last segment; `.` and `..` segments are folded.
fn resolve_relative(text: &str, base: &str) -> String {
    let base = &base[..base.find(['?', '#']).unwrap_or(base.len())];
    let (origin, base_path) = split_origin(base);
    let joined = if text.starts_with('/') {
        text.to_string()
    } else {
        let dir = &base_path[..base_path.rfind('/').map_or(0, |i| i + 1)];
        format!("{}{text}", if dir.is_empty() { "/" } else { dir })
    };
    let (path, rest) = joined.split_at(joined.find(['?', '#']).unwrap_or(joined.len()));
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    for (i, seg) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match *seg {
            "." => {
                if last {
                    out.push("");
                }
            }
            ".." => {
                out.pop();
                if last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    format!("{origin}/{}{rest}", out.join("/"))
}

/// `%XX` escapes decoded (for names shown to people); invalid escapes are kept as they are.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (RemoteKind, String, String) {
        let m = parse_model_url(text, Some("http://127.0.0.1:8080/www/index.html")).unwrap();
        (m.kind, m.url, m.name)
    }

    #[test]
    fn repo_ids_and_hugging_face_pages_read_from_resolve() {
        use RemoteKind::*;
        let main = "https://huggingface.co/Qwen/Qwen2.5-0.5B/resolve/main/".to_string();
        assert_eq!(parse("Qwen/Qwen2.5-0.5B"), (Folder, main.clone(), "Qwen/Qwen2.5-0.5B".into()));
        assert_eq!(
            parse("https://huggingface.co/Qwen/Qwen2.5-0.5B"),
            (Folder, main.clone(), "Qwen/Qwen2.5-0.5B".into())
        );
        assert_eq!(
            parse("https://huggingface.co/Qwen/Qwen2.5-0.5B/tree/main"),
            (Folder, main, "Qwen/Qwen2.5-0.5B".into())
        );
        assert_eq!(
            parse("https://huggingface.co/o/r/tree/v1.0/sub/dir"),
            (Folder, "https://huggingface.co/o/r/resolve/v1.0/sub/dir/".into(), "o/r".into())
        );
    }

    #[test]
    fn gguf_files_folders_and_relative_urls() {
        use RemoteKind::*;
        assert_eq!(
            parse("https://example.org/m/model%20one.Q4_0.GGUF?download=true"),
            (Gguf, "https://example.org/m/model%20one.Q4_0.GGUF?download=true".into(), "model one.Q4_0.GGUF".into())
        );
        assert_eq!(
            parse("https://example.org/models/tiny"),
            (Folder, "https://example.org/models/tiny/".into(), "tiny".into())
        );
        assert_eq!(
            parse("/models/demo.gguf"),
            (Gguf, "http://127.0.0.1:8080/models/demo.gguf".into(), "demo.gguf".into())
        );
        assert_eq!(
            parse("../cache/smollm2/x.gguf"),
            (Gguf, "http://127.0.0.1:8080/cache/smollm2/x.gguf".into(), "x.gguf".into())
        );
        assert_eq!(parse("./tiny/"), (Folder, "http://127.0.0.1:8080/www/tiny/".into(), "tiny".into()));
    }

    #[test]
    fn other_text_names_what_is_accepted() {
        for text in ["ftp://host/model.gguf", "model.gguf", "a/b/c", ""] {
            let err = parse_model_url(text, None).unwrap_err().to_string();
            assert!(err.contains("Hugging Face repo id (owner/name)") && err.starts_with("--model:"), "{text}: {err}");
        }
        assert!(parse_model_url("ftp://host/model.gguf", Some("ftp://host/")).is_err());
    }
}
