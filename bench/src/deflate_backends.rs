//! `--deflate-backends` (issue 13): whole messages without context
//! takeover, the way libws's shared mode compresses them, by zlib-rs (the
//! backend libws uses) and by libdeflate (a one-shot compressor, C), on the
//! bench's JSON documents. zlib-rs: one compressor, reset before each
//! message, raw deflate, sync flush, the 00 00 ff ff tail dropped (RFC
//! 7692 7.2.1). libdeflate: one compressor, a whole raw deflate stream per
//! message (a final block; RFC 7692 7.2.3.3 allows it). Ratio = input /
//! compressed bytes; speed = MB of input per second, one thread, the
//! median of `repeat` timed passes over the documents.

use std::time::Instant;

use flate2::{Compress, Compression, FlushCompress};

use crate::json;

fn zlib_rs(c: &mut Compress, msg: &[u8], out: &mut Vec<u8>) -> usize {
    c.reset();
    out.clear();
    out.reserve(msg.len() + 64);
    c.compress_vec(msg, out, FlushCompress::Sync).expect("deflate");
    debug_assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    out.len() - 4
}

fn libdeflate(c: &mut libdeflater::Compressor, msg: &[u8], out: &mut Vec<u8>) -> usize {
    out.resize(c.deflate_compress_bound(msg.len()), 0);
    c.deflate_compress(msg, out).expect("libdeflate: output bound")
}

pub fn run(sizes: &[usize], repeat: usize) {
    println!("# whole messages, no context takeover; 8 JSON documents per size; one thread");
    println!("| size | backend, level | ratio | MB/s (median of {repeat}) |");
    println!("|---|---|---|---|");
    for &size in sizes {
        let docs: Vec<Vec<u8>> = (0..8).map(|s| json::document(size, s)).collect();
        let input: usize = docs.iter().map(Vec::len).sum();
        let mut out = Vec::new();
        let passes = (2_000_000 / input).max(1);
        let mut report = |name: &str, f: &mut dyn FnMut(&[u8], &mut Vec<u8>) -> usize| {
            let wire: usize = docs.iter().map(|d| f(d, &mut out)).sum();
            let mut speeds: Vec<f64> = (0..repeat.max(1))
                .map(|_| {
                    let t = Instant::now();
                    for _ in 0..passes {
                        for d in &docs {
                            std::hint::black_box(f(d, &mut out));
                        }
                    }
                    (input * passes) as f64 / 1e6 / t.elapsed().as_secs_f64()
                })
                .collect();
            speeds.sort_by(f64::total_cmp);
            println!("| {size} | {name} | {:.2}x | {:.1} |", input as f64 / wire as f64, speeds[speeds.len() / 2]);
        };
        for level in [1u32, 2, 6] {
            let mut c = Compress::new_with_window_bits(Compression::new(level), false, 15);
            report(&format!("zlib-rs {level}"), &mut |m, o| zlib_rs(&mut c, m, o));
        }
        for level in [1i32, 2, 4, 6] {
            let mut c = libdeflater::Compressor::new(libdeflater::CompressionLvl::new(level).expect("level 1-12"));
            report(&format!("libdeflate {level}"), &mut |m, o| libdeflate(&mut c, m, o));
        }
    }
}
