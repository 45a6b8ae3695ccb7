//! Linear layers with more than a few rows on flex natively: `x @ W + b` forward and its three
//! gradients backward, each product one call of gemm per thread.
//!
//! burn's own path gives the same numbers but costs more on this project's 2-core machines:
//!
//! - gemm shares one product between threads itself, and on the model's shapes two threads were
//!   often no faster than one (measured with the weights out of cache: `[512,1536]@[1536,512]`
//!   121 GFLOP/s on two threads, 143 on one). Here each thread runs gemm on its own slice of
//!   the output (whole rows or whole columns), so the threads never wait for each other, and
//!   backward the input's gradient and the weight's gradient are computed at the same time.
//! - flex allocates every product's output twice (a zeroed buffer, then an aligned copy of it);
//!   here gemm writes into the output's one allocation.
//! - A tied LM head is `x @ E^T` with `E [V, D]` the embedding: the weight's gradient is made as
//!   `dY^T @ x`, `[V, D]` like `E`, instead of `[D, V]` and a transposed copy.
//!
//! Anything else (WebGPU, CUDA, other dtypes, gradient checkpointing) gets `None` and runs
//! burn's ops as before; the tests hold the two equal, gradients included.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::tensor::{DType, Tensor, TensorData};

use super::adamw::dense;

/// Products of fewer multiply-adds than this run on one thread: handing them out would cost
/// more than it saves.
const SPLIT_FROM: usize = 1 << 21;

/// `x [.., K] @ W (+ bias [N])` with `W [K, N]`, or with `transposed` the transpose of a weight
/// stored `[N, K]` (a tied LM head's embedding). Gradients flow to `x`, the weight and the bias
/// where they are tracked. `None` unless every tensor is f32 on flex (plain or
/// `device.autodiff()` without checkpointing) and the shapes agree.
pub fn linear<const D: usize>(
    x: &Tensor<D>,
    weight: &Tensor<2>,
    bias: Option<&Tensor<1>>,
    transposed: bool,
) -> Option<Tensor<D>> {
    let dims = x.dims();
    let k = dims[D - 1];
    let [w0, w1] = weight.dims();
    let (wk, n) = if transposed { (w1, w0) } else { (w0, w1) };
    let f32s = x.dtype() == DType::F32
        && weight.dtype() == DType::F32
        && bias.is_none_or(|b| b.dtype() == DType::F32);
    if !f32s || wk != k || bias.is_some_and(|b| b.dims() != [n]) {
        return None;
    }
    let mut out_dims = dims;
    out_dims[D - 1] = n;
    if let Ok(xp) = x.clone().try_into_primitive::<Flex>() {
        let wp = weight.clone().try_into_primitive::<Flex>().ok()?;
        let bp = match bias {
            Some(b) => Some(b.clone().try_into_primitive::<Flex>().ok()?),
            None => None,
        };
        let y = forward(
            &dense(xp),
            &wp,
            bp.map(dense).as_ref(),
            transposed,
            out_dims,
        );
        return Some(Tensor::from_primitive::<Flex>(y));
    }
    let (xp, x_node) = x
        .clone()
        .try_into_primitive::<Autodiff<Flex>>()
        .ok()?
        .into_parts();
    let (wp, w_node) = weight
        .clone()
        .try_into_primitive::<Autodiff<Flex>>()
        .ok()?
        .into_parts();
    let xp = dense(xp);
    let state = State {
        x: xp.clone(),
        weight: wp.clone(),
        transposed,
    };
    let out = match bias {
        Some(b) => {
            let (bp, b_node) = b
                .clone()
                .try_into_primitive::<Autodiff<Flex>>()
                .ok()?
                .into_parts();
            let y = forward(&xp, &wp, Some(&dense(bp)), transposed, out_dims);
            match LinearBackward
                .prepare::<NoCheckpointing>([x_node, w_node, b_node])
                .compute_bound()
                .stateful()
            {
                OpsKind::Tracked(prep) => prep.finish(state, y),
                OpsKind::UnTracked(prep) => prep.finish(y),
            }
        }
        None => {
            let y = forward(&xp, &wp, None, transposed, out_dims);
            match LinearBackward
                .prepare::<NoCheckpointing>([x_node, w_node])
                .compute_bound()
                .stateful()
            {
                OpsKind::Tracked(prep) => prep.finish(state, y),
                OpsKind::UnTracked(prep) => prep.finish(y),
            }
        }
    };
    Some(Tensor::from_primitive::<Autodiff<Flex>>(out))
}

/// A matrix operand of gemm: element `(i, j)` at `ptr + i * rs + j * cs`.
#[derive(Clone, Copy, Debug)]
struct Mat {
    ptr: *const f32,
    rs: isize,
    cs: isize,
}

// SAFETY: a `Mat` only reads, and lives no longer than the tensor it points into (every product
// finishes before its function returns).
unsafe impl Send for Mat {}
unsafe impl Sync for Mat {}

impl Mat {
    /// A 2-d tensor as it lies in memory, its view's strides included.
    fn of(t: &FlexTensor) -> Mat {
        let layout = t.layout();
        let [rs, cs] = layout.strides() else {
            panic!("gemm_linear: a 2-d tensor was expected")
        };
        let storage = t.storage::<f32>();
        Mat {
            ptr: storage[layout.start_offset()..].as_ptr(),
            rs: *rs,
            cs: *cs,
        }
    }

    /// A contiguous `[rows, cols]` block of `values`.
    fn dense(values: &[f32], cols: usize) -> Mat {
        Mat {
            ptr: values.as_ptr(),
            rs: cols as isize,
            cs: 1,
        }
    }

    fn t(self) -> Mat {
        Mat {
            ptr: self.ptr,
            rs: self.cs,
            cs: self.rs,
        }
    }

    /// The same matrix from row `i` and column `j` on.
    fn at(self, i: usize, j: usize) -> Mat {
        Mat {
            ptr: self
                .ptr
                .wrapping_offset(i as isize * self.rs + j as isize * self.cs),
            ..self
        }
    }
}

/// The weight as the `[K, N]` matrix the product uses.
fn weight_kn(weight: &FlexTensor, transposed: bool) -> Mat {
    let w = Mat::of(weight);
    if transposed { w.t() } else { w }
}

/// `y = x @ W (+ bias)`, `x` dense `[M, K]` (any leading dims), `y` shaped `out_dims`.
fn forward<const D: usize>(
    x: &FlexTensor,
    weight: &FlexTensor,
    bias: Option<&FlexTensor>,
    transposed: bool,
    out_dims: [usize; D],
) -> FlexTensor {
    let n = out_dims[D - 1];
    let m: usize = out_dims[..D - 1].iter().product();
    let k = x.layout().shape()[D - 1];
    let xs = &x.storage::<f32>()[..m * k];
    let mut y: Vec<f32> = match bias {
        // gemm adds the product to the bias already in place.
        Some(b) => {
            let b = &b.storage::<f32>()[..n];
            let mut y = Vec::with_capacity(m * n);
            for _ in 0..m {
                y.extend_from_slice(b);
            }
            y
        }
        None => Vec::with_capacity(m * n),
    };
    // SAFETY: `y` has room for [m, n]; the operands hold [m, k] and [k, n] (the layouts checked
    // by flex); with no bias gemm writes every value without reading, and the length is set
    // after.
    unsafe {
        product(
            y.as_mut_ptr(),
            (m, k, n),
            Mat::dense(xs, k),
            weight_kn(weight, transposed),
            bias.is_some(),
            parts_for(m, k, n, rayon::current_num_threads()),
        );
        y.set_len(m * n);
    }
    FlexTensor::from_data(TensorData::new(y, out_dims))
}

/// How many threads a `[m, k] @ [k, n]` product is shared between.
fn parts_for(m: usize, k: usize, n: usize, threads: usize) -> usize {
    if m.saturating_mul(k).saturating_mul(n) < SPLIT_FROM {
        1
    } else {
        threads.max(1)
    }
}

#[derive(Clone, Copy)]
struct Out(*mut f32);
// SAFETY: each thread writes its own rows or columns of the output (see `product`).
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

/// `dst [m, n]` (row-major, contiguous) `= lhs [m, k] @ rhs [k, n]`, or `+=` with `accumulate`,
/// cut into `parts` slices along the longer of m and n, one single-threaded gemm per slice.
///
/// # Safety
/// `dst` must have room for `m * n` values (initialised when `accumulate`), and the operands must
/// point at `[m, k]` and `[k, n]` values with their strides.
unsafe fn product(
    dst: *mut f32,
    (m, k, n): (usize, usize, usize),
    lhs: Mat,
    rhs: Mat,
    accumulate: bool,
    parts: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            // SAFETY: dst has room for m * n values.
            unsafe { std::ptr::write_bytes(dst, 0, m * n) };
        }
        return;
    }
    let dst = Out(dst);
    // One slice: rows i0..i1 and columns j0..j1 of the output.
    let run = move |(i0, i1): (usize, usize), (j0, j1): (usize, usize)| {
        let dst = dst;
        // SAFETY: the caller's shapes; slices are disjoint.
        unsafe {
            gemm::gemm(
                i1 - i0,
                j1 - j0,
                k,
                dst.0.add(i0 * n + j0),
                1,
                n as isize,
                accumulate,
                lhs.at(i0, 0).ptr,
                lhs.cs,
                lhs.rs,
                rhs.at(0, j0).ptr,
                rhs.cs,
                rhs.rs,
                1.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            )
        }
    };
    let along_n = n >= m;
    let len = if along_n { n } else { m };
    // Slices in whole blocks of 16 (one AVX-512 register of columns, or a few rows).
    let parts = parts.clamp(1, len.div_ceil(16));
    if parts == 1 {
        run((0, m), (0, n));
        return;
    }
    let per = len.div_ceil(parts).div_ceil(16) * 16;
    rayon::scope(|s| {
        for p in 1..parts {
            let (a, b) = (p * per, ((p + 1) * per).min(len));
            if a >= b {
                continue;
            }
            if along_n {
                s.spawn(move |_| run((0, m), (a, b)));
            } else {
                s.spawn(move |_| run((a, b), (0, n)));
            }
        }
        let b = per.min(len);
        if along_n {
            run((0, m), (0, b));
        } else {
            run((0, b), (0, n));
        }
    });
}

/// What the backward pass needs: the input (dense) and the weight as stored.
#[derive(Clone, Debug)]
struct State {
    x: FlexTensor,
    weight: FlexTensor,
    transposed: bool,
}

#[derive(Debug)]
struct LinearBackward;

impl<const N: usize> Backward<Flex, N> for LinearBackward {
    type State = State;

    fn backward(self, ops: Ops<State, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = dense(grads.consume::<Flex>(&ops.node));
        let parents = ops.parents;
        let State {
            x,
            weight,
            transposed,
        } = ops.state;
        let x_shape = x.layout().shape().clone();
        let k = x_shape[x_shape.num_dims() - 1];
        let w_shape = weight.layout().shape().clone();
        let n = if transposed { w_shape[0] } else { w_shape[1] };
        let m = x.layout().num_elements() / k.max(1);
        let dys = &dy.storage::<f32>()[..m * n];
        let xs = &x.storage::<f32>()[..m * k];
        let (dx_parent, dw_parent) = (parents[0].as_ref(), parents[1].as_ref());
        let db_parent = if N > 2 { parents[2].as_ref() } else { None };
        let threads = rayon::current_num_threads();
        // Both gradients at once, the threads shared between them.
        let (dx_threads, dw_threads) = if dx_parent.is_some() && dw_parent.is_some() {
            ((threads / 2).max(1), (threads - threads / 2).max(1))
        } else {
            (threads, threads)
        };
        let dx = || {
            dx_parent.map(|_| {
                // dx = dy @ W^T: [m, n] @ [n, k]
                let mut dx = Vec::with_capacity(m * k);
                // SAFETY: shapes as above; gemm writes every value, the length is set after.
                unsafe {
                    product(
                        dx.as_mut_ptr(),
                        (m, n, k),
                        Mat::dense(dys, n),
                        weight_kn(&weight, transposed).t(),
                        false,
                        parts_for(m, n, k, dx_threads),
                    );
                    dx.set_len(m * k);
                }
                FlexTensor::from_data(TensorData::new(dx, x_shape.clone()))
            })
        };
        let dw = || {
            dw_parent.map(|_| {
                let (rows, cols) = if transposed { (n, k) } else { (k, n) };
                let (lhs, rhs) = if transposed {
                    // dW = dy^T @ x: [n, m] @ [m, k], laid out like the stored [N, K] weight
                    (Mat::dense(dys, n).t(), Mat::dense(xs, k))
                } else {
                    // dW = x^T @ dy: [k, m] @ [m, n]
                    (Mat::dense(xs, k).t(), Mat::dense(dys, n))
                };
                let mut dw = Vec::with_capacity(rows * cols);
                // SAFETY: as for dx.
                unsafe {
                    product(
                        dw.as_mut_ptr(),
                        (rows, m, cols),
                        lhs,
                        rhs,
                        false,
                        parts_for(rows, m, cols, dw_threads),
                    );
                    dw.set_len(rows * cols);
                }
                FlexTensor::from_data(TensorData::new(dw, w_shape.clone()))
            })
        };
        let (dx, dw) = if dx_parent.is_some() && dw_parent.is_some() && threads > 1 {
            rayon::join(dx, dw)
        } else {
            (dx(), dw())
        };
        let db = db_parent.map(|_| {
            let mut db = vec![0f32; n];
            for row in dys.chunks_exact(n) {
                for (s, &g) in db.iter_mut().zip(row) {
                    *s += g;
                }
            }
            FlexTensor::from_data(TensorData::new(db, [n]))
        });
        for (parent, grad) in [(dx_parent, dx), (dw_parent, dw), (db_parent, db)] {
            if let (Some(parent), Some(grad)) = (parent, grad) {
                grads.register::<Flex>(parent.id, grad);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};

    fn flat<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().iter::<f32>().collect()
    }

    fn close(got: &[f32], want: &[f32], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: lengths");
        let scale = want.iter().fold(1e-3f32, |m, x| m.max(x.abs()));
        for (i, (a, b)) in got.iter().zip(want).enumerate() {
            assert!(
                (a - b).abs() <= 2e-5 * scale,
                "{what}[{i}]: {a} vs {b} (scale {scale})"
            );
        }
    }

    /// The product in f64 by hand: `x [m, k] @ w [k, n] + b`.
    fn by_hand(
        x: &[f32],
        w: &[f32],
        b: Option<&[f32]>,
        (m, k, n): (usize, usize, usize),
    ) -> Vec<f32> {
        let mut y = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = b.map_or(0.0, |b| b[j] as f64);
                for t in 0..k {
                    s += x[i * k + t] as f64 * w[t * n + j] as f64;
                }
                y[i * n + j] = s as f32;
            }
        }
        y
    }

    /// Every split of the output (one part, along rows, along columns, ragged last slices),
    /// with and without accumulating, against the product by hand; operands as views.
    #[test]
    fn products_split_any_way_give_the_product() {
        let mut rng = crate::rng::Rng::new(5);
        let mut values =
            |len: usize| -> Vec<f32> { (0..len).map(|_| rng.unit() as f32 * 2.0 - 1.0).collect() };
        for &(m, k, n) in &[
            (3, 5, 7),
            (70, 33, 20),
            (20, 33, 70),
            (1, 64, 129),
            (129, 8, 1),
        ] {
            let x = values(m * k);
            let w = values(k * n);
            // The weight stored transposed, read through strides.
            let mut w_nk = vec![0f32; k * n];
            for t in 0..k {
                for j in 0..n {
                    w_nk[j * k + t] = w[t * n + j];
                }
            }
            let start = values(m * n);
            for parts in [1, 2, 3, 5] {
                for (name, rhs) in [
                    ("[k, n]", Mat::dense(&w, n)),
                    ("[n, k]^T", Mat::dense(&w_nk, k).t()),
                ] {
                    let mut y = vec![f32::NAN; m * n];
                    unsafe {
                        product(
                            y.as_mut_ptr(),
                            (m, k, n),
                            Mat::dense(&x, k),
                            rhs,
                            false,
                            parts,
                        )
                    };
                    close(
                        &y,
                        &by_hand(&x, &w, None, (m, k, n)),
                        &format!("{name} parts {parts}"),
                    );
                    let mut acc = start.clone();
                    unsafe {
                        product(
                            acc.as_mut_ptr(),
                            (m, k, n),
                            Mat::dense(&x, k),
                            rhs,
                            true,
                            parts,
                        )
                    };
                    let want: Vec<f32> = by_hand(&x, &w, None, (m, k, n))
                        .iter()
                        .zip(&start)
                        .map(|(p, s)| p + s)
                        .collect();
                    close(&acc, &want, &format!("{name} parts {parts} accumulated"));
                }
            }
        }
    }

    /// Plain flex, a `[2, 3, 4]` input and a `[4, 2]` weight worked by hand.
    #[test]
    fn a_small_layer_by_hand() {
        let device = Device::flex();
        let x: Vec<f32> = (0..24).map(|i| i as f32 * 0.5 - 3.0).collect();
        let w = [1.0f32, -1.0, 0.5, 2.0, -0.25, 0.0, 3.0, 1.5];
        let b = [0.1f32, -0.2];
        let xt = Tensor::<3>::from_data(TensorData::new(x.clone(), [2, 3, 4]), &device);
        let wt = Tensor::<2>::from_data(TensorData::new(w.to_vec(), [4, 2]), &device);
        let bt = Tensor::<1>::from_data(TensorData::new(b.to_vec(), [2]), &device);
        let y = linear(&xt, &wt, Some(&bt), false).expect("flex");
        assert_eq!(y.dims(), [2, 3, 2]);
        // Row 0: x = [-3, -2.5, -2, -1.5]: -3*1 - 2.5*0.5 - 2*-0.25 - 1.5*3 + 0.1 = -8.15;
        // -3*-1 - 2.5*2 - 2*0 - 1.5*1.5 - 0.2 = -4.45.
        let got = flat(y);
        assert!(
            (got[0] + 8.15).abs() < 1e-5 && (got[1] + 4.45).abs() < 1e-5,
            "{got:?}"
        );
        close(&got, &by_hand(&x, &w, Some(&b), (6, 4, 2)), "y");
    }

    /// Values and all three gradients equal burn's ops, for a weight `[K, N]` with a bias and for
    /// a tied head `x @ E^T`, on shapes big enough to be split between threads.
    #[test]
    fn values_and_gradients_equal_burns() {
        let device = Device::flex().autodiff();
        let (b, t, k, n) = (3, 50, 64, 300);
        assert!(b * t * k * n >= SPLIT_FROM, "big enough to be split");
        let normal = Distribution::Normal(0.0, 1.0);
        let x0 = Tensor::<3>::random([b, t, k], normal, &device);
        let upstream = Tensor::<3>::random([b, t, n], normal, &device);
        for transposed in [false, true] {
            let w_shape = if transposed { [n, k] } else { [k, n] };
            let w0 = Tensor::<2>::random(w_shape, normal, &device);
            let b0 = Tensor::<1>::random([n], normal, &device);
            for with_bias in [true, false] {
                let what = format!("transposed {transposed}, bias {with_bias}");
                let (x, w, bias) = (
                    x0.clone().detach().require_grad(),
                    w0.clone().detach().require_grad(),
                    b0.clone().detach().require_grad(),
                );
                let y = linear(&x, &w, with_bias.then_some(&bias), transposed).expect("flex");
                let grads = (y.clone() * upstream.clone()).sum().backward();

                let (xr, wr, br) = (
                    x0.clone().detach().require_grad(),
                    w0.clone().detach().require_grad(),
                    b0.clone().detach().require_grad(),
                );
                let w_kn = if transposed {
                    wr.clone().transpose()
                } else {
                    wr.clone()
                };
                let mut yr = xr.clone().matmul(w_kn.unsqueeze::<3>());
                if with_bias {
                    yr = yr + br.clone().unsqueeze::<3>();
                }
                let grads_r = (yr.clone() * upstream.clone()).sum().backward();

                close(&flat(y.inner()), &flat(yr.inner()), &format!("{what}: y"));
                let (dx, dxr) = (x.grad(&grads).unwrap(), xr.grad(&grads_r).unwrap());
                close(&flat(dx), &flat(dxr), &format!("{what}: dx"));
                let (dw, dwr) = (w.grad(&grads).unwrap(), wr.grad(&grads_r).unwrap());
                assert_eq!(dw.dims(), w_shape);
                close(&flat(dw), &flat(dwr), &format!("{what}: dW"));
                if with_bias {
                    let (db, dbr) = (bias.grad(&grads).unwrap(), br.grad(&grads_r).unwrap());
                    close(&flat(db), &flat(dbr), &format!("{what}: db"));
                } else {
                    assert!(bias.grad(&grads).is_none());
                }
            }
        }
    }

    /// A frozen weight (not tracked) gets no gradient; the input still does.
    #[test]
    fn only_tracked_tensors_get_gradients() {
        let device = Device::flex().autodiff();
        let x = Tensor::<2>::random([20, 8], Distribution::Default, &device).require_grad();
        let w = Tensor::<2>::random([8, 6], Distribution::Default, &device);
        let y = linear(&x, &w, None, false).expect("flex");
        let grads = y.sum().backward();
        assert!(w.grad(&grads).is_none());
        // d(sum(x @ w))/dx[i][t] = sum_j w[t][j]
        let row_sums: Vec<f32> = flat(w.inner().sum_dim(1).reshape([8]));
        let dx = flat(x.grad(&grads).unwrap());
        for (i, g) in dx.iter().enumerate() {
            assert!((g - row_sums[i % 8]).abs() < 1e-5, "dx[{i}] = {g}");
        }
    }

    #[test]
    fn mismatched_shapes_and_other_dtypes_are_left_to_burn() {
        let device = Device::flex();
        let x = Tensor::<2>::random([4, 8], Distribution::Default, &device);
        let w = Tensor::<2>::random([8, 6], Distribution::Default, &device);
        assert!(linear(&x, &w, None, true).is_none(), "[8, 6]^T is [6, 8]");
        let b = Tensor::<1>::random([5], Distribution::Default, &device);
        assert!(
            linear(&x, &w, Some(&b), false).is_none(),
            "bias of 5 for 6 outputs"
        );
        assert!(
            linear(
                &x.clone().cast(DType::F64),
                &w.clone().cast(DType::F64),
                None,
                false
            )
            .is_none()
        );
        assert!(linear(&x, &w, None, false).is_some());
    }
}
