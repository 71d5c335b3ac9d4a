//! Divergence, caught when it happens: the rule that a run has diverged (a non-finite or
//! exploding (P0) or loss at a record of method §5, or a non-finite scalar the ALM's
//! sweeps already read back), the error that stops the method at once, and the likely
//! fix it suggests. Without this a diverged run spends its whole budget and is then
//! reported as a broken model file, or saved with an absurd (P0) as if it had worked.

use crate::config::{Config, Method};
use crate::output::fmt_sig;

/// (P0) above this many times its scale (the larger of the empty network's and the
/// initialisation's (P0)) counts as exploding. No method that converges comes near it:
/// every one starts at or below the scale, and the Armijo methods never increase (P0).
pub const EXPLODE_FACTOR: f64 = 1e6;

/// A method stopped because its iterates diverged.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error(
    "{method} diverged at {phase} {} {iter} ({} passes): {what}; {fix}",
    iter_word(phase),
    fmt_sig(*passes, 4)
)]
pub struct Divergence {
    pub method: String,
    /// The phase of the record (`sgd`, `adam`, `gd`, `apg`, `alm`).
    pub phase: String,
    /// Epoch, iteration or outer iteration within the phase.
    pub iter: usize,
    pub passes: f64,
    /// What was seen: `(P0) is NaN`, `(P0) 2.9e+11 exceeds 1e6 × 0.98`.
    pub what: String,
    /// The likely fix ([`fix_for`]).
    pub fix: String,
}

/// What a phase counts: epochs for the minibatch methods, outer iterations for the ALM.
fn iter_word(phase: &str) -> &'static str {
    match phase {
        "sgd" | "adam" => "epoch",
        "alm" => "outer iteration",
        _ => "iteration",
    }
}

/// Why `name` = `value` means divergence, if it does: not finite, or (with a finite
/// `limit`) above it.
pub fn judge(name: &str, value: f64, limit: f64) -> Option<String> {
    if !value.is_finite() {
        Some(format!("{name} is {value}"))
    } else if value > limit {
        Some(format!(
            "{name} {} exceeds {} × its scale {}",
            fmt_sig(value, 3),
            fmt_sig(EXPLODE_FACTOR, 1),
            fmt_sig(limit / EXPLODE_FACTOR, 3)
        ))
    } else {
        None
    }
}

/// The likely fix for a divergence of `method` in `phase`: the phase's own step setting
/// (the learning rate of prox-SGD or prox-Adam, the first Armijo step of prox-GD/APG, ρ0 of
/// the ALM) with a value to try, standardised inputs, and the option that keeps the last
/// finite state.
pub fn fix_for(cfg: &Config, method: Method, phase: &str) -> String {
    let smaller = |what: &str, key: &str, v: f64| {
        format!(
            "try a smaller {what} (--set {key}={}, now {})",
            fmt_sig(v / 10.0, 3),
            fmt_sig(v, 3)
        )
    };
    let step = match phase {
        "sgd" => smaller("learning rate", "sgd.lr", cfg.sgd.lr),
        "adam" => smaller("learning rate", "adam.lr", cfg.adam.lr),
        "gd" | "apg" => smaller("first step", "gd.step0", cfg.gd.step0),
        _ => {
            let (key, v) = if method == Method::WarmAlm {
                ("alm.rho0_warm", cfg.alm.rho0_warm)
            } else {
                ("alm.rho0", cfg.alm.rho0)
            };
            format!(
                "try a larger penalty parameter (--set {key}={}, now {})",
                fmt_sig(v * 10.0, 3),
                fmt_sig(v, 3)
            )
        }
    };
    format!(
        "{step} or standardised inputs (--standardize); train.keep_diverged = true saves the \
         last finite state instead"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judge_flags_non_finite_and_exploding_values_only() {
        assert!(judge("(P0)", f64::NAN, f64::INFINITY).is_some());
        assert!(judge("(P0)", f64::INFINITY, f64::INFINITY).is_some());
        assert!(judge("(P0)", 2e6, 1e6).unwrap().contains("exceeds"));
        assert_eq!(judge("(P0)", 0.9, 1e6), None);
    }

    #[test]
    fn the_message_names_method_phase_iteration_and_the_lr_key() {
        let mut cfg = Config::default();
        cfg.sgd.lr = 100.0;
        let d = Divergence {
            method: "prox-sgd".into(),
            phase: "sgd".into(),
            iter: 3,
            passes: 7.5,
            what: "(P0) is NaN".into(),
            fix: fix_for(&cfg, Method::ProxSgd, "sgd"),
        };
        let msg = d.to_string();
        for want in [
            "prox-sgd diverged at sgd epoch 3 (7.5 passes)",
            "--set sgd.lr=10, now 100",
            "--standardize",
        ] {
            assert!(msg.contains(want), "`{want}` missing: {msg}");
        }
        assert!(fix_for(&cfg, Method::ProxAdam, "adam").contains("adam.lr"));
        assert!(fix_for(&cfg, Method::WarmAlm, "alm").contains("alm.rho0_warm"));
    }
}
