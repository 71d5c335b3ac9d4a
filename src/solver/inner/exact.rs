//! method §6, optional exact blocks (config `alm.exact_blocks`, squared loss only):
//! - `V_{L−1}` given the rest is a quadratic whose normal equations
//!   `(ρI + 2W_LᵀW_L)V = ρσ(U_{L−1}) − Λ_{L−1} + 2W_Lᵀ(Y − b_L1ᵀ)` share one `n×n` matrix
//!   across all columns: the host factors it (it is parameter-sized), the device applies it
//!   with one matmul;
//! - `(W_L, b_L)` given `V_{L−1}` is a group-lasso least squares, solved on the host by
//!   FISTA on the Gram matrices `[V;1][V;1]ᵀ/N` and `Y[V;1]ᵀ/N`, which the device computes.
//!
//! Only parameter-sized matrices cross to the host (`n×n`, `m×n`), never anything of
//! size `N`.

use super::Lifted;
use crate::backend::{Axis, BResult, Backend, BackendError};
use crate::problem::DeviceData;
use ndarray::{s, Array2};

/// Device workspaces of the exact blocks, allocated once.
pub struct ExactWork<B: Backend> {
    /// `2(ρI + 2W_LᵀW_L)⁻¹`, `n×n`.
    minv: B::Mat,
    /// `−2(ρI + 2W_LᵀW_L)⁻¹ W_Lᵀ b_L`, `n×1`.
    bias: B::Mat,
    gram: B::Mat,
    vsum: B::Mat,
    cross: B::Mat,
    ysum: B::Mat,
}

impl<B: Backend> ExactWork<B> {
    pub fn new(be: &B, n: usize, m: usize) -> BResult<Self> {
        Ok(ExactWork {
            minv: be.zeros(n, n)?,
            bias: be.zeros(n, 1)?,
            gram: be.zeros(n, n)?,
            vsum: be.zeros(n, 1)?,
            cross: be.zeros(m, n)?,
            ysum: be.zeros(m, 1)?,
        })
    }
}

fn host<B: Backend>(be: &B, m: &B::Mat) -> BResult<Array2<f64>> {
    Ok(be.download(m)?.mapv(|v| v as f64))
}

fn to_f32(a: &Array2<f64>) -> Array2<f32> {
    a.mapv(|v| v as f32)
}

/// Inverse of a symmetric positive definite matrix by Cholesky (f64).
pub fn spd_inverse(a: &Array2<f64>) -> Option<Array2<f64>> {
    let n = a.nrows();
    let mut l = Array2::<f64>::zeros((n, n));
    for i in 0..n {
        for j in 0..=i {
            let mut sum = a[[i, j]];
            for k in 0..j {
                sum -= l[[i, k]] * l[[j, k]];
            }
            if i == j {
                if sum <= 0.0 || !sum.is_finite() {
                    return None;
                }
                l[[i, i]] = sum.sqrt();
            } else {
                l[[i, j]] = sum / l[[j, j]];
            }
        }
    }
    // Solve L Lᵀ X = I column by column.
    let mut inv = Array2::<f64>::zeros((n, n));
    let mut y = vec![0.0; n];
    for c in 0..n {
        for i in 0..n {
            let mut sum = if i == c { 1.0 } else { 0.0 };
            for k in 0..i {
                sum -= l[[i, k]] * y[k];
            }
            y[i] = sum / l[[i, i]];
        }
        for i in (0..n).rev() {
            let mut sum = y[i];
            for k in i + 1..n {
                sum -= l[[k, i]] * inv[[k, c]];
            }
            inv[[i, c]] = sum / l[[i, i]];
        }
    }
    Some(inv)
}

/// Largest eigenvalue of a symmetric PSD matrix by power iteration.
fn lambda_max(a: &Array2<f64>) -> f64 {
    let n = a.nrows();
    let mut v = Array2::<f64>::from_elem((n, 1), 1.0 / (n as f64).sqrt());
    let mut lam = 0.0;
    for _ in 0..100 {
        let w = a.dot(&v);
        let norm = w.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm == 0.0 {
            return 0.0;
        }
        let next = (&v * &w).sum();
        v = w / norm;
        if (next - lam).abs() <= 1e-10 * next.abs() {
            return next.max(norm);
        }
        lam = next;
    }
    lam.max(0.0)
}

/// Group soft-threshold of the weight part of `theta = [W b]` (b unpenalised).
fn prox_theta(theta: &mut Array2<f64>, n: usize, thresh: f64, axis: Axis) {
    let mut w = theta.slice_mut(s![.., ..n]);
    let groups: Vec<_> = match axis {
        Axis::Rows => w.rows_mut().into_iter().collect(),
        Axis::Cols => w.columns_mut().into_iter().collect(),
    };
    for mut g in groups {
        let norm = g.iter().map(|x| x * x).sum::<f64>().sqrt();
        let f = if norm > thresh {
            1.0 - thresh / norm
        } else {
            0.0
        };
        g.mapv_inplace(|x| x * f);
    }
}

fn penalty(theta: &Array2<f64>, n: usize, axis: Axis) -> f64 {
    let w = theta.slice(s![.., ..n]);
    match axis {
        Axis::Rows => w.rows().into_iter().map(|r| r.dot(&r).sqrt()).sum(),
        Axis::Cols => w.columns().into_iter().map(|c| c.dot(&c).sqrt()).sum(),
    }
}

impl<B: Backend> Lifted<B> {
    /// Exact `V_{L−1}` block (method §6); updates `U_L` to match.
    pub fn exact_v_last(
        &mut self,
        be: &B,
        data: &DeviceData<B>,
        ex: &mut ExactWork<B>,
    ) -> BResult<()> {
        let layers = self.spec.layers();
        let j = layers - 2;
        let wl = host(be, &self.p.w[layers - 1])?;
        let bl = host(be, &self.p.b[layers - 1])?;
        let n = wl.ncols();
        let mut m = wl.t().dot(&wl) * 2.0;
        for i in 0..n {
            m[[i, i]] += self.rho;
        }
        let inv = spd_inverse(&m).ok_or_else(|| BackendError::Kernel {
            kernel: "exact_v_last".into(),
            msg: "ρI + 2W_LᵀW_L is not positive definite (non-finite weights?)".into(),
        })?;
        be.write(&mut ex.minv, to_f32(&(&inv * 2.0)).view())?;
        be.write(
            &mut ex.bias,
            to_f32(&(inv.dot(&wl.t().dot(&bl)) * -2.0)).view(),
        )?;
        // T = (ρσ(U) − Λ)/2 + W_LᵀY, then V = 2M⁻¹T − 2M⁻¹W_Lᵀb.
        // The first candidate's V is free here (the exact block has no trials).
        be.leaky_relu(&mut self.cand[0].v[j], &self.u[j], self.spec.alpha)?;
        be.axpby(
            &mut self.scratch[j],
            0.5 * self.rho as f32,
            &self.cand[0].v[j],
            -0.5,
            &self.lam[j],
        )?;
        be.matmul_tn(&mut self.scratch[j], &self.p.w[layers - 1], &data.y, 1.0)?;
        be.matmul_nn(
            &mut self.v[j],
            &ex.minv,
            &self.scratch[j],
            Some(&ex.bias),
            0.0,
        )?;
        be.matmul_nn(
            &mut self.u[layers - 1],
            &self.p.w[layers - 1],
            &self.v[j],
            Some(&self.p.b[layers - 1]),
            0.0,
        )?;
        let total: f64 = (0..layers).map(|l| self.spec.layer_macs(l)).sum();
        self.passes +=
            2.0 * self.spec.pass_fraction(layers - 1, self.n, self.n) + (n * n) as f64 / total;
        Ok(())
    }

    /// Exact `(W_L, b_L)` block (method §6): group-lasso least squares by FISTA on the
    /// Gram matrices, started at the current point and monotone (never worse than it).
    pub fn exact_w_last(
        &mut self,
        be: &B,
        data: &DeviceData<B>,
        ex: &mut ExactWork<B>,
    ) -> BResult<()> {
        let layers = self.spec.layers();
        let l = layers - 1;
        let axis = self.spec.axes[l];
        let input = if layers >= 2 {
            &self.v[layers - 2]
        } else {
            &data.x
        };
        be.matmul_nt(&mut ex.gram, input, input, 0.0)?;
        be.row_sum(&mut ex.vsum, input, 0.0)?;
        be.matmul_nt(&mut ex.cross, &data.y, input, 0.0)?;
        be.row_sum(&mut ex.ysum, &data.y, 0.0)?;
        let total: f64 = (0..layers).map(|k| self.spec.layer_macs(k)).sum();
        let n = self.spec.sizes[l];
        let m = self.spec.sizes[l + 1];
        self.passes += (n * n) as f64 / total + self.spec.pass_fraction(l, self.n, self.n);
        let nn = self.n as f64;
        let mut gram = Array2::<f64>::zeros((n + 1, n + 1));
        gram.slice_mut(s![..n, ..n])
            .assign(&(host(be, &ex.gram)? / nn));
        let vs = host(be, &ex.vsum)? / nn;
        gram.slice_mut(s![..n, n..]).assign(&vs);
        gram.slice_mut(s![n.., ..n]).assign(&vs.t());
        gram[[n, n]] = 1.0;
        let mut cross = Array2::<f64>::zeros((m, n + 1));
        cross
            .slice_mut(s![.., ..n])
            .assign(&(host(be, &ex.cross)? / nn));
        cross
            .slice_mut(s![.., n..])
            .assign(&(host(be, &ex.ysum)? / nn));
        let mut theta = Array2::<f64>::zeros((m, n + 1));
        theta
            .slice_mut(s![.., ..n])
            .assign(&host(be, &self.p.w[l])?);
        theta
            .slice_mut(s![.., n..])
            .assign(&host(be, &self.p.b[l])?);
        let lam = self.spec.lambda as f64;
        // f(Θ) = tr(ΘΓΘᵀ) − 2tr(ΘCᵀ) (the loss up to a constant), ∇f = 2(ΘΓ − C).
        let objective = |t: &Array2<f64>| {
            (t.dot(&gram) * t).sum() - 2.0 * (t * &cross).sum() + lam * penalty(t, n, axis)
        };
        let lip = 2.0 * lambda_max(&gram);
        if !(lip > 0.0 && lip.is_finite()) {
            return Ok(());
        }
        let step = 1.0 / lip;
        let mut f_x = objective(&theta);
        let mut x = theta.clone();
        let mut y = theta;
        let mut tk = 1.0f64;
        for _ in 0..500 {
            let grad = (y.dot(&gram) - &cross) * 2.0;
            let mut xn = &y - &(grad * step);
            prox_theta(&mut xn, n, lam * step, axis);
            let f = objective(&xn);
            if f > f_x {
                // Function-value restart: a plain prox-gradient step from x next, which
                // cannot increase f, so the returned point is never worse than the start.
                if tk == 1.0 {
                    break;
                }
                y = x.clone();
                tk = 1.0;
                continue;
            }
            let tn = (1.0 + (1.0 + 4.0 * tk * tk).sqrt()) / 2.0;
            let moved = (&xn - &x).iter().map(|v| v * v).sum::<f64>().sqrt();
            let scale = xn.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
            y = &xn + &((&xn - &x) * ((tk - 1.0) / tn));
            x = xn;
            f_x = f;
            tk = tn;
            if moved <= 1e-9 * scale {
                break;
            }
        }
        let best = x;
        be.write(
            &mut self.p.w[l],
            to_f32(&best.slice(s![.., ..n]).to_owned()).view(),
        )?;
        be.write(
            &mut self.p.b[l],
            to_f32(&best.slice(s![.., n..]).to_owned()).view(),
        )?;
        let input = if layers >= 2 {
            &self.v[layers - 2]
        } else {
            &data.x
        };
        be.matmul_nn(&mut self.u[l], &self.p.w[l], input, Some(&self.p.b[l]), 0.0)?;
        self.passes += self.spec.pass_fraction(l, self.n, self.n);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spd_inverse_inverts() {
        let a = ndarray::array![[4.0, 1.0, 0.5], [1.0, 3.0, 0.2], [0.5, 0.2, 2.0]];
        let inv = spd_inverse(&a).unwrap();
        let eye = a.dot(&inv);
        for i in 0..3 {
            for j in 0..3 {
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((eye[[i, j]] - want).abs() < 1e-12);
            }
        }
        assert!(spd_inverse(&ndarray::array![[1.0, 2.0], [2.0, 1.0]]).is_none());
    }
}
