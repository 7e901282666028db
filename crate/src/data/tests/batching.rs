//! Batches: shifted targets, padding, packing, length grouping, shuffles, eval split.

use super::load;
use crate::data::{BatchOptions, Batcher, DataOptions, Example, TokenBatch, IGNORE_INDEX};

/// An example of `len` tokens with ids `base..`, supervised from token `from` on.
fn ex(base: u32, len: usize, from: usize, line: usize) -> Example {
    Example { ids: (base..base + len as u32).collect(), mask: (0..len).map(|i| i >= from).collect(), line }
}

/// Checks the target rule for every row against the examples laid in it.
fn check_targets(b: &TokenBatch, pad: u32) {
    let t = b.seq_len;
    assert_eq!(
        (b.ids.len(), b.targets.len(), b.positions.len(), b.segments.len()),
        (b.batch_size * t, b.batch_size * t, b.batch_size * t, b.batch_size * t)
    );
    let mut supervised = 0;
    for i in 0..b.ids.len() {
        let col = i % t;
        let tgt = b.targets[i];
        if tgt != IGNORE_INDEX {
            supervised += 1;
            assert!(col + 1 < t, "target in the last column");
            assert_eq!(tgt as u32, b.ids[i + 1]);
            assert_ne!(b.positions[i + 1], 0, "a target crosses into the next example");
            assert_eq!(b.segments[i], b.segments[i + 1], "a target crosses segments");
        }
    }
    assert_eq!(supervised, b.supervised);
    assert!(b.ids.iter().filter(|&&x| x == pad).count() >= b.batch_size * t - b.tokens);
}

fn opts(b: usize, t: usize) -> BatchOptions {
    BatchOptions {
        batch_size: b,
        seq_len: t,
        shuffle: false,
        group_by_length: false,
        pad_to_multiple_of: 1,
        ..Default::default()
    }
}

#[test]
fn targets_are_shifted_ids_where_supervised_and_padding_is_right() {
    let examples = vec![ex(10, 5, 2, 1), ex(20, 3, 0, 2), ex(30, 4, 4, 3)];
    let batcher = Batcher::new(examples, opts(2, 8), 0);
    let batches: Vec<_> = batcher.epoch(0).collect();
    assert_eq!(batches.len(), 2);
    let b = &batches[0];
    assert_eq!((b.batch_size, b.seq_len), (2, 5));
    assert_eq!(b.ids, [10, 11, 12, 13, 14, 20, 21, 22, 0, 0]);
    assert_eq!(b.targets, [-100, 12, 13, 14, -100, 21, 22, -100, -100, -100]);
    assert_eq!(b.positions, [0, 1, 2, 3, 4, 0, 1, 2, 0, 0]);
    assert_eq!((b.supervised, b.tokens), (5, 8));
    // The last batch is filled with an empty row to keep B.
    let last = &batches[1];
    assert_eq!((last.batch_size, last.seq_len), (2, 4));
    assert_eq!(last.targets, [-100; 8]);
    assert_eq!((last.supervised, last.tokens), (0, 4));
    let last = crate::model::Batch::from(last.clone());
    assert_eq!((last.b, last.t, last.ids.len(), last.targets.len()), (2, 4, 8, 8));
    // The engine's batch takes them as they are; its own label shift agrees.
    let model = crate::model::Batch::from(b.clone());
    assert_eq!((&model.ids, &model.targets, model.supervised()), (&b.ids, &b.targets, b.supervised));
    let labels: Vec<i64> = (0..b.ids.len())
        .map(|i| if i % b.seq_len > 0 && b.targets[i - 1] != IGNORE_INDEX { b.ids[i] as i64 } else { -100 })
        .collect();
    assert_eq!(crate::model::Batch::from_labels(b.ids.clone(), &labels, b.seq_len).targets, b.targets);

    let mut o = opts(2, 8);
    o.drop_last = true;
    assert_eq!(Batcher::new(vec![ex(1, 3, 0, 1); 3], o, 0).batches_per_epoch(), 1);
    let mut o = opts(2, 8);
    o.pad_to_seq_len = true;
    let b = Batcher::new(vec![ex(1, 3, 0, 1)], o, 7).epoch(0).next().unwrap();
    assert_eq!((b.seq_len, b.ids[3]), (8, 7));
}

#[test]
fn examples_longer_than_the_row_are_cut() {
    let b = Batcher::new(vec![ex(0, 20, 0, 1)], opts(1, 8), 0).epoch(0).next().unwrap();
    assert_eq!(b.seq_len, 8);
    assert_eq!(b.supervised, 7);
    check_targets(&b, 0);
}

#[test]
fn packing_fits_whole_examples_and_never_targets_across_them() {
    let lens = [7, 3, 5, 2, 8, 1, 4, 6, 3, 2, 9, 5];
    let examples: Vec<_> = lens.iter().enumerate().map(|(i, &l)| ex(100 * i as u32 + 1, l, 0, i + 1)).collect();
    let mut o = opts(2, 10);
    o.packing = true;
    let batcher = Batcher::new(examples.clone(), o, 0);
    let total: usize = lens.iter().sum();
    assert!(batcher.rows() < lens.len());
    assert!(batcher.rows() <= total.div_ceil(10) + 1, "{} rows", batcher.rows());
    let mut seen = Vec::new();
    let mut supervised = 0;
    for b in batcher.epoch(0) {
        check_targets(&b, 0);
        supervised += b.supervised;
        for (i, &p) in b.positions.iter().enumerate() {
            if p == 0 && b.ids[i] != 0 {
                seen.push(b.ids[i]);
            }
            // A new segment starts with each example and with the padding; ids count up.
            let col = i % b.seq_len;
            if col > 0 {
                let starts = (p == 0 && b.ids[i] != 0) || (b.ids[i] == 0 && b.ids[i - 1] != 0);
                let step = b.segments[i] - b.segments[i - 1];
                assert_eq!(step, starts as u32, "segment at {i}: {:?}", b.segments);
            } else {
                assert_eq!(b.segments[i], 0);
            }
        }
    }
    seen.sort();
    assert_eq!(seen, examples.iter().map(|e| e.ids[0]).collect::<Vec<_>>());
    assert_eq!(supervised, examples.iter().map(|e| e.supervised()).sum::<usize>());
}

#[test]
fn shuffles_are_deterministic_and_can_be_turned_off() {
    let examples: Vec<_> = (0..40).map(|i| ex(i * 10 + 1, 2 + (i as usize * 7) % 13, 0, i as usize + 1)).collect();
    let mut o = opts(4, 16);
    o.shuffle = true;
    o.group_by_length = false;
    let a = Batcher::new(examples.clone(), o.clone(), 0);
    assert_eq!(a.plan(0), a.plan(0));
    assert_ne!(a.plan(0), a.plan(1));
    o.seed = 7;
    assert_ne!(Batcher::new(examples.clone(), o.clone(), 0).plan(0), a.plan(0));
    let mut flat: Vec<usize> = a.plan(3).concat();
    flat.sort();
    assert_eq!(flat, (0..40).collect::<Vec<_>>());
    o.shuffle = false;
    let off = Batcher::new(examples, o, 0);
    assert_eq!(off.plan(5).concat(), (0..40).collect::<Vec<_>>());
}

#[test]
fn grouping_by_length_cuts_padding() {
    let examples: Vec<_> = (0..400u32).map(|i| ex(1, 2 + ((i * 37) % 200) as usize, 0, 1)).collect();
    let padding = |group: bool| {
        let mut o = opts(8, 256);
        o.shuffle = true;
        o.group_by_length = group;
        Batcher::new(examples.clone(), o, 0).epoch(0).map(|b| b.batch_size * b.seq_len - b.tokens).sum::<usize>()
    };
    let (grouped, plain) = (padding(true), padding(false));
    assert!(grouped * 3 < plain, "grouped {grouped} vs plain {plain}");
}

#[test]
fn eval_split_by_fraction_is_deterministic_and_disjoint() {
    let text: String = (0..50).map(|i| format!("{{\"text\": \"example {i}\"}}\n")).collect();
    let d = load("d.jsonl", &text, &DataOptions::default()).unwrap();
    let (train, eval) = d.clone().split_eval(0.1, 3);
    assert_eq!((train.examples.len(), eval.len()), (45, 5));
    let (train2, eval2) = d.clone().split_eval(0.1, 3);
    assert_eq!((train.examples.clone(), eval.clone()), (train2.examples, eval2));
    let mut lines: Vec<usize> = train.examples.iter().chain(&eval).map(|e| e.line).collect();
    assert!(train.examples.windows(2).all(|w| w[0].line < w[1].line));
    lines.sort();
    assert_eq!(lines, (1..=50).collect::<Vec<_>>());
    assert_ne!(d.clone().split_eval(0.1, 4).1, eval);
    assert_eq!(d.clone().split_eval(0.0, 3).1.len(), 0);
    assert_eq!(d.split_eval(0.001, 3).1.len(), 1);
}

#[test]
fn real_chat_batches() {
    let text = r#"{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello there"}]}
{"messages": [{"role": "user", "content": "2+2"}, {"role": "assistant", "content": "4"}, {"role": "user", "content": "and 3+3"}, {"role": "assistant", "content": "6"}]}
"#;
    let d = load("c.jsonl", text, &DataOptions::default()).unwrap();
    let want: usize = d.examples.iter().map(|e| e.supervised()).sum();
    let batcher = Batcher::new(d.examples, BatchOptions { batch_size: 2, ..Default::default() }, 2);
    let b = batcher.epoch(0).next().unwrap();
    check_targets(&b, 2);
    assert_eq!(b.supervised, want);
    assert_eq!(b.seq_len % 64, 0);
}

#[test]
fn a_separate_eval_file() {
    let m = super::smollm2();
    let train = b"{\"text\": \"a\"}\n{\"text\": \"b\"}\n{\"text\": \"c\"}\n";
    let eval = b"prompt,completion\nq,r\n";
    // The fraction is ignored when there is an eval file.
    let o = DataOptions { eval_fraction: 0.5, ..Default::default() };
    let p =
        crate::data::prepare(("t.jsonl", train), Some(("e.csv", eval)), &m.tokenizer, Some(&m.template), &o).unwrap();
    assert_eq!((p.train.examples.len(), p.eval.len()), (3, 1));
    assert_eq!((p.summary.examples, p.summary.eval_examples, p.summary.eval_supervised_tokens), (3, 1, 2));
    let e = crate::data::prepare(("t.jsonl", train), Some(("e.csv", b"x\n1\n")), &m.tokenizer, None, &o).unwrap_err();
    assert_eq!(e.location().map(|l| (l.file.as_str(), l.line)), Some(("e.csv", 1)));
}
