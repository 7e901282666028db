//! The safetensors reader, the sharded index parser and `read_f32_tensors` on arbitrary bytes:
//! errors, never panics, hangs or huge allocations. The first byte picks the chunk size and
//! whether the file length is known; the rest is the file. Every tensor handed over is converted
//! to f32 as the model loader does it.
//!
//! cargo +nightly fuzz run safetensors_read fuzz/corpus/safetensors_read -- -rss_limit_mb=2048 -malloc_limit_mb=2048

#![no_main]

use libfuzzer_sys::fuzz_target;
use weblora::io::ggml::dequantize_to_vec;
use weblora::io::safetensors::read_f32_tensors;
use weblora::io::{LoadError, SafetensorsEvent, SafetensorsIndex, SafetensorsReader};

/// Chunk sizes, picked by the low 4 bits of the first byte; 0 means the whole file at once.
const CHUNKS: [usize; 16] = [0, 1, 2, 3, 4, 5, 7, 8, 9, 13, 24, 31, 64, 100, 256, 4096];

fuzz_target!(|data: &[u8]| {
    let Some((&first, bytes)) = data.split_first() else {
        return;
    };
    let chunk = match CHUNKS[(first & 0x0F) as usize] {
        0 => bytes.len().max(1),
        n => n,
    };
    let total = (first & 0x10 != 0).then_some(bytes.len() as u64);
    let mut reader = SafetensorsReader::new("fuzz.safetensors", total);
    let mut on_event = |ev: SafetensorsEvent<'_>| -> Result<(), LoadError> {
        if let SafetensorsEvent::Tensor { info, bytes } = ev {
            assert_eq!(bytes.len() as u64, info.n_bytes, "tensor `{}`", info.name);
            let n = usize::try_from(info.n_elements()).expect("a 64-bit usize holds any element count");
            let values = dequantize_to_vec(&info.name, info.ty, bytes, n)?;
            assert_eq!(values.len(), n);
        }
        Ok(())
    };
    let result = bytes.chunks(chunk).try_for_each(|c| reader.feed(c, &mut on_event));
    if let Err(e) = result.and_then(|()| reader.finish(&mut on_event)) {
        let _ = e.to_string();
    }
    if let Ok(tensors) = read_f32_tensors("fuzz.safetensors", bytes) {
        for (_, shape, values) in tensors {
            assert_eq!(shape.iter().product::<usize>(), values.len());
        }
    }
    if let Ok(index) = SafetensorsIndex::parse("fuzz.index.json", bytes) {
        let _ = index.shards();
    }
});
