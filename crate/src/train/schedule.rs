//! Learning-rate schedules with linear warm-up, as transformers' `get_*_schedule_with_warmup`:
//! the k-th optimizer update (k = 0, 1, ...) uses lr · factor(k).

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    Constant,
    Linear,
    Cosine,
}

/// The factor of the base learning rate at update `k` of `total`, after `warmup` warm-up updates.
pub fn lr_factor(schedule: Schedule, k: usize, warmup: usize, total: usize) -> f32 {
    if k < warmup {
        return k as f32 / warmup.max(1) as f32;
    }
    let span = total.saturating_sub(warmup).max(1) as f32;
    let progress = (k - warmup) as f32 / span;
    match schedule {
        Schedule::Constant => 1.0,
        Schedule::Linear => (1.0 - progress).max(0.0),
        Schedule::Cosine => (0.5 * (1.0 + (std::f32::consts::PI * progress).cos())).max(0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_decay_as_transformers() {
        // get_linear_schedule_with_warmup(warmup=2, total=6): 0, 0.5, 1, 0.75, 0.5, 0.25
        let f: Vec<f32> = (0..6).map(|k| lr_factor(Schedule::Linear, k, 2, 6)).collect();
        assert_eq!(f, vec![0.0, 0.5, 1.0, 0.75, 0.5, 0.25]);
        // get_cosine_schedule_with_warmup(warmup=0, total=4): 1, 0.8536, 0.5, 0.1464
        let c: Vec<f32> = (0..4).map(|k| lr_factor(Schedule::Cosine, k, 0, 4)).collect();
        for (got, want) in c.iter().zip([1.0, 0.853_553_4, 0.5, 0.146_446_6]) {
            assert!((got - want).abs() < 1e-6, "{c:?}");
        }
        assert_eq!(lr_factor(Schedule::Constant, 7, 0, 4), 1.0);
        assert_eq!(lr_factor(Schedule::Constant, 1, 4, 10), 0.25);
    }
}
