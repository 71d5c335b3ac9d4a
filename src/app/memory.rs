//! The memory a run needs, estimated before anything big is allocated, and the refusal
//! (exit 2) of a run that cannot fit: `--hidden 100000,100000` used to abort in the
//! allocator, and on a GPU grow until the system killed it. The estimate counts every
//! matrix the solver allocates, from the workspace sizes of `problem.rs` (the forward and
//! backprop workspace [`Net`](crate::problem::Net)), the measures (method §5), the
//! baselines and their shared Armijo step (method §7) and the ALM's lifted state (method
//! §6, `solver/inner`), in f32. It is compared with the memory available to new
//! allocations (`MemAvailable`) and, on a GPU, with the adapter's buffer limits.

use crate::config::{AlmVariant, Config, Method, Task};
use crate::data::{available_memory, human_bytes};
use crate::{Error, Result};

/// Bytes of one matrix element (both backends compute in f32).
const ELEM: u128 = 4;

/// Where the solver's matrices live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// The CPU backend: everything in host memory.
    Host,
    /// A GPU; `shared` when its memory is the host's (a software adapter such as
    /// lavapipe, or an integrated GPU), so device buffers count against host memory too.
    Device { shared: bool },
}

/// What one command's runs need, in bytes, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Needs {
    /// The training and test data uploaded to the backend.
    pub data: u128,
    /// Host copies of the parameters: the shared initialisation and each method's
    /// returned network.
    pub host_params: u128,
    /// The solver's matrices on the backend: the iterate, the measures' workspaces and
    /// the largest method's own workspaces (methods run one after another).
    pub workspaces: u128,
    /// Host staging of transfers to and from a GPU (its largest matrix).
    pub staging: u128,
    /// The longest column of any matrix: a GPU buffer chunk must hold at least one.
    pub column: u128,
}

/// Sizes of one problem, in matrix elements.
struct Counts {
    sizes: Vec<u128>,
    n: u128,
    n_test: u128,
    /// All parameters `Σ r·c + r`.
    params: u128,
    /// Weights only.
    weights: u128,
    /// Rows of every `U_l` (`Σ_l n_l`, l = 1..L) and of the hidden ones (l < L).
    rows: u128,
    hidden_rows: u128,
    /// Group shrink vectors of every layer.
    shrink: u128,
}

impl Counts {
    fn new(sizes: &[usize], n: usize, n_test: usize) -> Self {
        let sizes: Vec<u128> = sizes.iter().map(|&s| s as u128).collect();
        let layers = sizes.len().saturating_sub(1);
        let (mut params, mut weights, mut rows, mut hidden_rows, mut shrink) = (0, 0, 0, 0, 0);
        for l in 0..layers {
            let (r, c) = (sizes[l + 1], sizes[l]);
            weights += r * c;
            params += r * c + r;
            rows += r;
            shrink += r.max(c);
            if l + 1 < layers {
                hidden_rows += r;
            }
        }
        Counts {
            sizes,
            n: n as u128,
            n_test: n_test as u128,
            params,
            weights,
            rows,
            hidden_rows,
            shrink,
        }
    }

    fn d(&self) -> u128 {
        self.sizes[0]
    }

    fn m(&self) -> u128 {
        *self.sizes.last().unwrap_or(&0)
    }

    /// `Net` over `cols` columns: `U` and `δ` per layer, `A` per hidden layer, a gradient.
    fn net(&self, cols: u128) -> u128 {
        if cols == 0 {
            return 0;
        }
        (2 * self.rows + self.hidden_rows) * cols + self.params
    }

    /// One Armijo prox-gradient step's workspaces (`prox_grad.rs`): trial, difference,
    /// the trial's forward pass, shrink.
    fn armijo_step(&self) -> u128 {
        2 * self.params + self.net(self.n) + self.shrink
    }

    /// The measures (method §5): forward passes over train and test, two W-shaped
    /// temporaries, and the per-output error scale of multi-output regression.
    fn evaluator(&self, task: Task) -> u128 {
        let scale = if task == Task::Regression && self.m() > 1 {
            2 * self.m() * (self.n + self.n_test)
        } else {
            0
        };
        self.net(self.n) + self.net(self.n_test) + 2 * self.weights + self.shrink + scale
    }

    /// prox-SGD / prox-Adam with minibatches of `batch`: the batch's `Net` and gathered
    /// columns (and the shorter last batch's), the optimiser's two moments.
    fn minibatch(&self, batch: usize) -> u128 {
        let b = (batch as u128).clamp(1, self.n.max(1));
        let rest = self.n % b;
        let io = self.d() + self.m();
        self.net(b) + io * b + self.net(rest) + io * rest + 2 * self.params + self.shrink
    }

    /// The ALM (method §6): the lifted state (W, b and their gradient; `U`, its gradient
    /// and `B` per layer; `V`, `Λ`, a scratch and `G_V` per hidden layer) and each of the
    /// `LADDER` trial candidates' workspaces (a trial `W, b` and its step, shrink factors;
    /// the trial `U` per layer; the trial `V` and the trial's two gradients per hidden
    /// layer), the best W, the exact blocks' Gram matrices, and the P0-steps variant's
    /// forward pass and Armijo step.
    fn alm(&self, cfg: &Config) -> u128 {
        let ladder = crate::backend::LADDER as u128;
        let candidate =
            2 * self.params + self.rows * self.n + 3 * self.hidden_rows * self.n + self.shrink;
        let lifted = 2 * self.params
            + 3 * self.rows * self.n
            + 4 * self.hidden_rows * self.n
            + ladder * candidate;
        let layers = self.sizes.len().saturating_sub(1);
        let exact = if cfg.alm.exact_blocks && layers >= 2 {
            let (h, m) = (self.sizes[layers - 1], self.m());
            2 * h * h + 2 * h + m * h + m
        } else {
            0
        };
        let p0_steps = match cfg.alm.variant {
            AlmVariant::P0Steps => self.net(self.n) + self.armijo_step(),
            AlmVariant::Plain => 0,
        };
        lifted + self.params + exact + p0_steps
    }

    /// One method's own workspaces.
    fn method(&self, cfg: &Config, method: Method) -> u128 {
        match method {
            Method::ProxSgd => self.minibatch(cfg.sgd.batch),
            Method::ProxAdam => self.minibatch(cfg.adam.batch),
            Method::ProxGd => self.net(self.n) + self.armijo_step(),
            Method::ProxApg => self.net(self.n) + self.armijo_step() + self.params,
            Method::Alm => self.alm(cfg),
            Method::WarmAlm => self.minibatch(cfg.sgd.batch).max(self.alm(cfg)),
        }
    }
}

/// What running `methods` (one after another, as `compare` does) on `sizes` with `n`
/// training and `n_test` test samples needs.
pub fn needs(sizes: &[usize], n: usize, n_test: usize, cfg: &Config, methods: &[Method]) -> Needs {
    let c = Counts::new(sizes, n, n_test);
    let io = c.d() + c.m();
    let data = io * (c.n + c.n_test);
    let largest_method = methods.iter().map(|&m| c.method(cfg, m)).max().unwrap_or(0);
    let last_good = if cfg.train.keep_diverged { c.params } else { 0 };
    let workspaces = c.params + last_good + c.evaluator(cfg.data.task) + largest_method;
    let largest_matrix = c
        .sizes
        .windows(2)
        .map(|w| w[0] * w[1])
        .chain([c.d() * c.n.max(c.n_test), c.rows * c.n])
        .max()
        .unwrap_or(0);
    Needs {
        data: ELEM * data,
        host_params: ELEM * c.params * (1 + methods.len() as u128),
        workspaces: ELEM * workspaces,
        staging: ELEM * largest_matrix,
        column: ELEM * c.sizes.iter().copied().max().unwrap_or(0),
    }
}

impl Needs {
    /// Host memory the run allocates from now on, with `placement`.
    pub fn host(&self, placement: Placement) -> u128 {
        let device = self.data + self.workspaces;
        match placement {
            Placement::Host => self.host_params + device,
            Placement::Device { shared: true } => self.host_params + self.staging + device,
            Placement::Device { shared: false } => self.host_params + self.staging,
        }
    }

    /// Memory the run allocates on a GPU.
    pub fn device(&self) -> u128 {
        self.data + self.workspaces
    }

    /// The breakdown a refusal gives.
    fn breakdown(&self, placement: Placement) -> String {
        let mut parts = vec![format!("parameters {}", human_bytes(self.host_params))];
        if placement != (Placement::Device { shared: false }) {
            parts.push(format!(
                "solver workspaces {}",
                human_bytes(self.workspaces)
            ));
            parts.push(format!("data {}", human_bytes(self.data)));
        }
        if placement != Placement::Host {
            parts.push(format!("transfer staging {}", human_bytes(self.staging)));
        }
        parts.join(", ")
    }
}

/// The advice every refusal ends with.
const ADVICE: &str = "use a smaller network (--hidden / model.hidden) or fewer samples \
                      (data.max_train)";

/// Refuse (exit 2) when the host memory the run needs with `placement` exceeds
/// `available` bytes (`None`: unknown, nothing to check). Without a placement (no device
/// opened yet) only the host copies of the parameters, which every backend makes, are
/// counted.
pub fn check_host(
    needs: &Needs,
    placement: Option<Placement>,
    available: Option<u64>,
) -> Result<()> {
    let (need, about, breakdown) = match placement {
        Some(p) => (needs.host(p), "about", needs.breakdown(p)),
        None => (
            needs.host_params,
            "at least",
            format!("parameters {}", human_bytes(needs.host_params)),
        ),
    };
    match available {
        Some(avail) if need > u128::from(avail) => Err(Error::Refused(format!(
            "the run needs {about} {} of host memory ({breakdown}), more than the {} \
             available (MemAvailable); {ADVICE}",
            human_bytes(need),
            human_bytes(u128::from(avail)),
        ))),
        _ => Ok(()),
    }
}

/// Refuse (exit 2) a run whose matrices a GPU cannot hold: a column longer than one
/// buffer binding may be (`max_storage_buffer_binding_size`, `max_buffer_size`), or
/// (`device_memory`, where known) more memory in all than the device has.
pub fn check_device(
    needs: &Needs,
    adapter: &str,
    binding_limit: u64,
    device_memory: Option<u64>,
) -> Result<()> {
    if needs.column > u128::from(binding_limit) {
        return Err(Error::Refused(format!(
            "a matrix column of the run takes {}, more than the {} one GPU buffer may hold on \
             {adapter} (max_storage_buffer_binding_size / max_buffer_size); {ADVICE}",
            human_bytes(needs.column),
            human_bytes(u128::from(binding_limit)),
        )));
    }
    match device_memory {
        Some(mem) if needs.device() > u128::from(mem) => Err(Error::Refused(format!(
            "the run needs about {} of GPU memory (solver workspaces {}, data {}), more than \
             the {} of {adapter}; {ADVICE}",
            human_bytes(needs.device()),
            human_bytes(needs.workspaces),
            human_bytes(needs.data),
            human_bytes(u128::from(mem)),
        ))),
        _ => Ok(()),
    }
}

/// The host check with what any backend needs at least (the parameters' host copies),
/// before a device is opened: an impossible network is refused at once, without waiting
/// for adapter discovery.
pub fn check_host_early(needs: &Needs) -> Result<()> {
    check_host(needs, None, available_memory())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        crate::config::load_config(None, &[]).unwrap()
    }

    #[test]
    fn the_estimate_grows_as_the_workspaces_do() {
        let cfg = cfg();
        let ws = |sizes: &[usize], n: usize, m: Method| needs(sizes, n, 0, &cfg, &[m]).workspaces;
        // Parameters grow with width², per-sample workspaces with width·N.
        for m in Method::ALL {
            let a = ws(&[64, 100, 100, 10], 1000, m);
            let b = ws(&[64, 200, 200, 10], 1000, m);
            let c = ws(&[64, 100, 100, 10], 2000, m);
            assert!(b > a && c > a, "{m}: {a} {b} {c}");
        }
        // Doubling the width of the square middle layer quadruples its weights: the
        // parameter part of the estimate grows ×~4 when it dominates.
        let big = |w: usize| needs(&[10, w, w, 1], 10, 0, &cfg, &[Method::ProxGd]);
        let (p1, p2) = (big(2000).host_params, big(4000).host_params);
        let ratio = p2 as f64 / p1 as f64;
        assert!((3.9..4.1).contains(&ratio), "{ratio}");
        // The ALM's lifted state is linear in N: 10× the samples, ~10× its workspaces.
        let alm = |n: usize| needs(&[10, 50, 50, 1], n, 0, &cfg, &[Method::Alm]).workspaces;
        let ratio = alm(100_000) as f64 / alm(10_000) as f64;
        assert!((9.0..10.01).contains(&ratio), "{ratio}");
        // Per sample the ALM keeps more matrices than a forward pass.
        assert!(
            ws(&[64, 100, 100, 10], 1000, Method::Alm)
                > ws(&[64, 100, 100, 10], 1000, Method::ProxGd)
        );
    }

    #[test]
    fn exact_counts_of_a_tiny_problem() {
        // 2-3-1, N = 4: P = 2·3+3 + 3·1+1 = 13 parameters, rows 4, hidden rows 3.
        let cfg = cfg();
        let n = needs(&[2, 3, 1], 4, 0, &cfg, &[Method::ProxGd]);
        assert_eq!(n.data, ELEM * 3 * 4);
        assert_eq!(n.host_params, ELEM * 13 * 2);
        // net(4) = (2·4 + 3)·4 + 13 = 57; step = 2·13 + 57 + shrink(3 + 3) = 89;
        // evaluator = 57 + 0 + 2·9 + 6 = 81; gd = 57 + 89 = 146; p = 13.
        assert_eq!(n.workspaces, ELEM * (13 + 81 + 146));
        assert_eq!(n.column, ELEM * 3);
    }

    #[test]
    fn an_impossible_network_is_refused_with_the_estimate_and_the_limit() {
        let cfg = cfg();
        let n = needs(
            &[64, 100_000, 100_000, 10],
            1437,
            360,
            &cfg,
            &[Method::WarmAlm],
        );
        let e = check_host(&n, Some(Placement::Host), Some(16 << 30)).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, Error::Refused(_)));
        for want in [
            "of host memory",
            "16.0 GiB available",
            "parameters",
            "--hidden",
        ] {
            assert!(msg.contains(want), "`{want}` missing: {msg}");
        }
        assert!(
            check_host(&n, Some(Placement::Host), None).is_ok(),
            "unknown memory: no check"
        );
        let e = check_host(&n, None, Some(16 << 30)).unwrap_err();
        assert!(e.to_string().contains("at least 74.6 GiB"), "{e}");
        let small = needs(&[64, 100, 100, 10], 1437, 360, &cfg, &[Method::WarmAlm]);
        assert!(check_host(&small, Some(Placement::Host), Some(16 << 30)).is_ok());
        // A GPU whose buffers cannot hold one column of a 100000-row matrix.
        let e = check_device(&n, "test adapter", 128 << 10, None).unwrap_err();
        assert!(
            e.to_string().contains("max_storage_buffer_binding_size"),
            "{e}"
        );
        let e = check_device(&n, "test adapter", 128 << 20, Some(8 << 30)).unwrap_err();
        assert!(e.to_string().contains("GPU memory"), "{e}");
    }
}
