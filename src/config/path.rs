//! `[path]`: the sparsity–accuracy frontier of method §9 (selection λ grid, selector,
//! polisher, refit λ, validation split, certificate target).

use super::{ConfigError, Method};

named! {
    /// How a selected, compacted support is refitted at `λ_r` (method §9).
    pub enum Polisher {
        /// `path.sgd_passes` of prox-SGD, then prox-GD with Armijo until the certificate target.
        SgdGd = "sgd+gd",
        /// As `sgd+gd` with prox-APG (method §7) in place of prox-GD.
        SgdApg = "sgd+apg",
        Gd = "gd",
        Apg = "apg",
        Alm = "alm",
        WarmAlm = "warm+alm",
    }
}

impl Polisher {
    /// The phases of the refit: an optional prox-SGD warm phase, then the certifying method.
    pub fn phases(self) -> (bool, Method) {
        match self {
            Polisher::SgdGd => (true, Method::ProxGd),
            Polisher::SgdApg => (true, Method::ProxApg),
            Polisher::Gd => (false, Method::ProxGd),
            Polisher::Apg => (false, Method::ProxApg),
            Polisher::Alm => (false, Method::Alm),
            Polisher::WarmAlm => (false, Method::WarmAlm),
        }
    }
}

section! {
    /// `sparse-alm path` (method §9).
    #[serde(deny_unknown_fields)]
    pub struct PathConfig {
        /// Selection grid `MIN:MAX:COUNT`, geometric and ascending.
        pub lambdas: String = "1e-4:0.3:10".to_string(),
        /// Selector passes per λ (each λ starts from the previous λ's weights).
        pub passes: f64 = 300.0 => Positive,
        pub selector: Method = Method::ProxSgd,
        pub polisher: Polisher = Polisher::SgdApg,
        /// Refit λ_r; absent: 1e-3 for the squared loss, scaled by the ratio of the empty
        /// network's losses for the others (method §9).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub lambda_refit: Option<f64> = None,
        /// Share of the training data held out to choose among points (never trained on).
        pub validation_fraction: f64 = 0.2 => Open,
        /// Prox-SGD passes of the polisher's first phase.
        pub sgd_passes: f64 = 100.0 => NonNegative,
        /// Most passes (of the compact network) one refit may take.
        pub refit_passes: f64 = 1000.0 => Positive,
        /// The refit stops once `cert` reaches this.
        pub cert_target: f64 = 1e-3 => Positive,
        /// Most λ values added past the grid's end (at the grid's ratio) while the
        /// support is not yet empty: the frontier of a small data set often lies above 0.3.
        pub extend: usize = 10,
        /// Most midpoints inserted where one λ step loses more than half of the live
        /// neurons (each retried from the previous weights).
        pub refine: usize = 4,
    }
}

impl PathConfig {
    /// The λ grid of `lambdas`, ascending.
    pub fn grid(&self) -> Result<Vec<f64>, ConfigError> {
        parse_grid(&self.lambdas).map_err(|m| ConfigError::field("path.lambdas", m))
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        self.grid()?;
        self.check_ranges("path")?;
        if let Some(l) = self.lambda_refit {
            ensure!(l.is_finite() && l > 0.0, "path.lambda_refit" => "must be positive and finite, got {l}");
        }
        Ok(())
    }
}

/// `MIN:MAX:COUNT` → `COUNT` geometric values from `MIN` to `MAX` (one value: `MIN`).
pub fn parse_grid(s: &str) -> Result<Vec<f64>, String> {
    let parts: Vec<&str> = s.split(':').map(str::trim).collect();
    let [lo, hi, n] = parts[..] else {
        return Err(format!(
            "expected MIN:MAX:COUNT (e.g. 1e-4:0.3:10), got {s:?}"
        ));
    };
    let num = |t: &str, what: &str| -> Result<f64, String> {
        match t.parse::<f64>() {
            Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
            _ => Err(format!(
                "{what} must be a positive number, got {t:?} in {s:?}"
            )),
        }
    };
    let (lo, hi) = (num(lo, "MIN")?, num(hi, "MAX")?);
    let n: usize = n
        .parse()
        .ok()
        .filter(|&n| (1..=1000).contains(&n))
        .ok_or_else(|| format!("COUNT must be an integer from 1 to 1000, got {n:?} in {s:?}"))?;
    if hi < lo {
        return Err(format!("MAX must be ≥ MIN (the path ascends), got {s:?}"));
    }
    if n == 1 {
        return Ok(vec![lo]);
    }
    let r = (hi / lo).ln() / (n - 1) as f64;
    Ok((0..n).map(|k| lo * (r * k as f64).exp()).collect())
}

#[cfg(test)]
mod tests {
    use super::parse_grid;

    #[test]
    fn grids_are_geometric_and_ascending() {
        let g = parse_grid("1e-4:1e-2:3").unwrap();
        assert_eq!(g.len(), 3);
        assert!((g[1] - 1e-3).abs() < 1e-12 && (g[2] - 1e-2).abs() < 1e-12);
        for bad in [
            "1e-4:0.3",
            "0:1:3",
            "1:0.1:3",
            "1e-4:0.3:0",
            "a:b:c",
            "-1:2:3",
        ] {
            assert!(parse_grid(bad).is_err(), "{bad}");
        }
    }
}
