//! The GGUF reader on arbitrary bytes, fed in chunks: errors, never panics, hangs or huge
//! allocations. The first byte picks the chunk size and whether the file length is known; the
//! rest is the file. Every tensor handed over is dequantized, and a matrix has its Q/K rows
//! un-permuted, as the model loader does it (with 1 to 8 heads, from the first byte's top bits).
//!
//! cargo +nightly fuzz run gguf_read fuzz/corpus/gguf_read -- -rss_limit_mb=2048 -malloc_limit_mb=2048

#![no_main]

use libfuzzer_sys::fuzz_target;
use weblora::io::ggml::dequantize_to_vec;
use weblora::io::{gguf_to_hf_qk_rows, GgmlType, GgufEvent, GgufReader, LoadError};

/// Chunk sizes, picked by the low 4 bits of the first byte; 0 means the whole file at once.
const CHUNKS: [usize; 16] = [0, 1, 2, 3, 4, 5, 7, 8, 13, 24, 31, 32, 63, 100, 256, 4096];

fuzz_target!(|data: &[u8]| {
    let Some((&first, bytes)) = data.split_first() else {
        return;
    };
    let chunk = match CHUNKS[(first & 0x0F) as usize] {
        0 => bytes.len().max(1),
        n => n,
    };
    let total = (first & 0x10 != 0).then_some(bytes.len() as u64);
    let mut reader = GgufReader::new("fuzz.gguf", total);
    let mut on_event = |ev: GgufEvent<'_>| -> Result<(), LoadError> {
        if let GgufEvent::Tensor { info, bytes } = ev {
            assert_eq!(bytes.len() as u64, info.n_bytes, "tensor `{}`", info.name);
            let n = usize::try_from(info.n_elements()).expect("a 64-bit usize holds any element count");
            if info.ty.can_dequantize() {
                let values = dequantize_to_vec(&info.name, info.ty, bytes, n)?;
                assert_eq!(values.len(), n);
                if let [rows, cols] = info.shape()[..] {
                    let f32_bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                    let heads = 1 + (first >> 5) as usize;
                    let _ =
                        gguf_to_hf_qk_rows(&info.name, &f32_bytes, GgmlType::F32, rows as usize, cols as usize, heads);
                }
            }
        }
        Ok(())
    };
    let result = bytes.chunks(chunk).try_for_each(|c| reader.feed(c, &mut on_event));
    if let Err(e) = result.and_then(|()| reader.finish(&mut on_event)) {
        let _ = e.to_string();
    }
});
