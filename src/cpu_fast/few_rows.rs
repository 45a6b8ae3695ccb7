//! Matrix products with few rows on the CPU: what decoding does (one new token per sequence, so
//! `x [m, K]` with m = the batch, 4 or 8), natively on flex.
//!
//! Such a product reads every weight once for only `m` multiply-adds each: its speed is how fast
//! the weight streams from memory. gemm (flex's matrix product) packs the weight into panels
//! first and runs products this small on one thread, so on this project's 2-core machine it
//! streamed 4 to 6 GB/s where the machine reads 20 to 40. Here each thread takes a range of
//! output columns and streams its part of the weight once, straight from where it lies:
//!
//! - [`Weight::Rows`]: the weight is `[K, N]` in row-major order (a `Linear`'s `[d_in, d_out]`).
//!   A tile of `R` rows by `C` vectors of columns keeps its sums in registers; each step over k
//!   loads `C` vectors of one weight row (prefetched a few rows ahead) and multiplies them by `R`
//!   broadcast inputs.
//! - [`Weight::Cols`]: the weight's transpose `[N, K]` is what lies in memory (the embedding
//!   `[V, D]` of a tied LM head, used as `x @ E^T`). Each output is a dot product of two
//!   contiguous rows; one weight row at a time meets `R` input rows, `R` vector sums.
//!
//! The threads are rayon's pool. Products that read the same input (q, k and v; gate and up) go in one call,
//! [`linear_many`], and share one hand-out of work.
//!
//! AVX-512 and AVX2+FMA are chosen at run time; elsewhere plain loops do the same work. Every
//! path is tested against the product in f64, and the model's shapes against burn's product.

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::tensor::{DType, Tensor, TensorData};
use rayon::prelude::*;

/// Products with at most this many rows run here; more rows have enough arithmetic per weight
/// for gemm's blocking to win.
pub const FEW_ROWS: usize = 16;

/// Below this many weight values (256 KiB) the products stay on one thread: handing out the work
/// would cost more than it saves.
const THREADS_FROM: usize = 64 * 1024;

/// `x [.., K] @ weight [K, N] (+ bias [N])` computed here, or `None` to let burn run it: when a
/// tensor is not a plain flex tensor (an autodiff tensor, another backend), is not f32, when x
/// has more than [`FEW_ROWS`] rows, or when the weight is neither `[K, N]` nor the transpose of
/// a row-major `[N, K]` in memory.
pub fn linear<const D: usize>(
    x: &Tensor<D>,
    weight: &Tensor<2>,
    bias: Option<&Tensor<1>>,
) -> Option<Tensor<D>> {
    let [y] = linear_many(x, [(weight, bias)])?;
    Some(y)
}

/// [`linear`] for several weights that read the same `x` (q, k and v; gate and up): one call
/// shares their columns out between the threads, so the threads wake once instead of once per
/// product. `None` unless every product can run here.
pub fn linear_many<const D: usize, const W: usize>(
    x: &Tensor<D>,
    layers: [(&Tensor<2>, Option<&Tensor<1>>); W],
) -> Option<[Tensor<D>; W]> {
    let (x, dims, (m, k)) = few_rows_input(x)?;
    let mut weights = Vec::with_capacity(W);
    for (weight, bias) in layers {
        let [wk, n] = weight.dims();
        let w = weight.clone().try_into_primitive::<Flex>().ok()?;
        let bias = flex_bias(bias, n)?;
        if wk != k || w.dtype() != DType::F32 {
            return None;
        }
        let layout = match w.layout().strides() {
            [s, 1] if *s == n as isize => Layout::Rows,
            [1, s] if *s == k as isize => Layout::Cols,
            _ => return None,
        };
        weights.push((w, layout, bias, n));
    }
    let jobs: Vec<Product<'_>> = weights
        .iter()
        .map(|(w, layout, bias, n)| {
            let values = &w.storage::<f32>()[w.layout().start_offset()..];
            Product {
                weight: match layout {
                    Layout::Rows => Weight::Rows(values),
                    Layout::Cols => Weight::Cols(values),
                },
                n: *n,
                bias: bias.as_ref().and_then(|b| b.as_slice::<f32>()),
            }
        })
        .collect();
    Some(run_products(x.as_slice::<f32>()?, dims, (m, k), &jobs))
}

/// `x [.., K]` as a contiguous flex tensor, its dims and `(m, K)` (m the product of the leading
/// dims), when it is f32 on plain flex with at most [`FEW_ROWS`] rows.
fn few_rows_input<const D: usize>(
    x: &Tensor<D>,
) -> Option<(FlexTensor, [usize; D], (usize, usize))> {
    let dims = x.dims();
    let m: usize = dims[..D - 1].iter().product();
    if m > FEW_ROWS || x.dtype() != DType::F32 {
        return None;
    }
    let x = contiguous(x.clone().try_into_primitive::<Flex>().ok()?);
    Some((x, dims, (m, dims[D - 1])))
}

/// A bias as a contiguous flex tensor: `Some(None)` without one, `None` (refused) when it is not
/// f32 on plain flex or does not hold `n` values.
fn flex_bias(bias: Option<&Tensor<1>>, n: usize) -> Option<Option<FlexTensor>> {
    let Some(b) = bias else {
        return Some(None);
    };
    let b = contiguous(b.clone().try_into_primitive::<Flex>().ok()?);
    (b.dtype() == DType::F32 && b.layout().num_elements() == n).then_some(Some(b))
}

/// `x @ W (+ bias)` for `W` products sharing `x [m, k]`, as tensors shaped like `dims` with the
/// last dimension each product's n.
fn run_products<const D: usize, const W: usize>(
    x: &[f32],
    dims: [usize; D],
    (m, k): (usize, usize),
    jobs: &[Product<'_>],
) -> [Tensor<D>; W] {
    let outs = products(x, (m, k), jobs);
    let mut outs = outs.into_iter().zip(jobs).map(|(out, job)| {
        let mut shape = dims;
        shape[D - 1] = job.n;
        let out = FlexTensor::from_data(TensorData::new(out, shape));
        Tensor::from_primitive::<Flex>(out)
    });
    std::array::from_fn(|_| outs.next().expect("one output per weight"))
}

/// Every product's `[m, n]` output ([`matmul_many`]) on this CPU's widest instructions, shared
/// between the threads when the weights hold at least [`THREADS_FROM`] values.
pub fn products(x: &[f32], (m, k): (usize, usize), jobs: &[Product<'_>]) -> Vec<Vec<f32>> {
    let values: usize = jobs.iter().map(|j| j.n * k).sum();
    let threads = if values >= THREADS_FROM {
        rayon::current_num_threads()
    } else {
        1
    };
    matmul_many(x, (m, k), jobs, threads, simd())
}

/// Columns per panel of [`Weight::Panels`]: one AVX-512 tile of the rows kernel.
pub const PANEL: usize = 64;

/// `w [K, N]` (row-major) in [`Weight::Panels`]' layout.
pub fn pack_panels(w: &[f32], k: usize, n: usize) -> Vec<f32> {
    assert!(
        w.len() >= k * n,
        "the weight holds {} values, [{k}, {n}] needs more",
        w.len()
    );
    let panels = n.div_ceil(PANEL);
    // Each value written once (no zeroing first: a reused block would be cleared for nothing).
    let mut packed = Vec::with_capacity(panels * k * PANEL);
    for p in 0..panels {
        let (from, to) = (p * PANEL, ((p + 1) * PANEL).min(n));
        for row in 0..k {
            packed.extend_from_slice(&w[row * n + from..row * n + to]);
            packed.extend(std::iter::repeat_n(0f32, PANEL - (to - from)));
        }
    }
    packed
}

/// A Linear layer's weight `[K, N]` packed in panels ([`Weight::Panels`]) for decoding: made
/// once per generation (prefill), read at every step.
#[derive(Clone, Debug)]
pub struct Panels {
    values: Vec<f32>,
    k: usize,
    n: usize,
}

impl Panels {
    /// The packed copy of `weight [K, N]` when it is f32 on plain flex (any strides), else `None`.
    pub fn of(weight: &Tensor<2>) -> Option<Panels> {
        if weight.dtype() != DType::F32 {
            return None;
        }
        let [k, n] = weight.dims();
        let w = contiguous(weight.clone().try_into_primitive::<Flex>().ok()?);
        let values = pack_panels(&w.storage::<f32>()[w.layout().start_offset()..], k, n);
        Some(Panels { values, k, n })
    }

    /// Bytes of f32 values held.
    pub fn bytes(&self) -> usize {
        self.values.len() * 4
    }

    /// `(K, N)` of the weight.
    pub fn shape(&self) -> (usize, usize) {
        (self.k, self.n)
    }

    /// The product `x @ W (+ bias)` with this weight, for [`products`].
    pub fn product<'a>(&'a self, bias: Option<&'a [f32]>) -> Product<'a> {
        Product {
            weight: Weight::Panels(&self.values),
            n: self.n,
            bias,
        }
    }
}

/// [`linear_many`] with packed weights: `x [.., K] @ W (+ bias)` for each `(W, bias)`. `None`
/// when x is not f32 on plain flex, has more than [`FEW_ROWS`] rows, or does not match a
/// weight's K or a bias' N.
pub fn linear_panels<const D: usize, const W: usize>(
    x: &Tensor<D>,
    layers: [(&Panels, Option<&Tensor<1>>); W],
) -> Option<[Tensor<D>; W]> {
    let (x, dims, (m, k)) = few_rows_input(x)?;
    let mut biases = Vec::with_capacity(W);
    for &(panels, bias) in &layers {
        if panels.k != k {
            return None;
        }
        biases.push(flex_bias(bias, panels.n)?);
    }
    let jobs: Vec<Product<'_>> = layers
        .iter()
        .zip(&biases)
        .map(|((panels, _), bias)| Product {
            weight: Weight::Panels(&panels.values),
            n: panels.n,
            bias: bias.as_ref().and_then(|b| b.as_slice::<f32>()),
        })
        .collect();
    Some(run_products(x.as_slice::<f32>()?, dims, (m, k), &jobs))
}

#[derive(Clone, Copy)]
enum Layout {
    Rows,
    Cols,
}

/// `t` itself when its values lie contiguously, else a contiguous copy.
pub(crate) fn contiguous(t: FlexTensor) -> FlexTensor {
    if t.layout().contiguous_offsets().is_some() {
        t
    } else {
        t.to_contiguous()
    }
}

/// [`Simd::detect`], asked once.
fn simd() -> Simd {
    static SIMD: std::sync::OnceLock<Simd> = std::sync::OnceLock::new();
    *SIMD.get_or_init(Simd::detect)
}

/// Where the weight of `x @ W` (`W [K, N]`) lies in memory.
#[derive(Clone, Copy, Debug)]
pub enum Weight<'a> {
    /// `W[k][j]` at `k * N + j`.
    Rows(&'a [f32]),
    /// `W[k][j]` at `j * K + k` (the transpose is row-major).
    Cols(&'a [f32]),
    /// Panels of [`PANEL`] columns ([`pack_panels`]): `W[k][j]` at
    /// `(j / PANEL) * K * PANEL + k * PANEL + j % PANEL`, the last panel padded with zeros. Each
    /// tile of columns then reads one contiguous block, which the hardware prefetcher follows,
    /// where `Rows` reads 256 bytes from every row of the matrix.
    Panels(&'a [f32]),
}

/// The instruction sets a product can run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Simd {
    /// Plain Rust loops.
    Scalar,
    /// x86-64 AVX2 with FMA: 8 lanes.
    Avx2,
    /// x86-64 AVX-512F: 16 lanes.
    Avx512,
}

impl Simd {
    /// The widest this CPU has.
    pub fn detect() -> Simd {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Simd::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Simd::Avx2;
            }
        }
        Simd::Scalar
    }

    /// Every level this CPU can run (for tests): each level's instructions include the ones
    /// before it.
    pub fn available() -> Vec<Simd> {
        let best = Simd::detect();
        [Simd::Scalar, Simd::Avx2, Simd::Avx512]
            .into_iter()
            .filter(|&s| s as u8 <= best as u8)
            .collect()
    }
}

/// One product of [`matmul_many`]: `x @ weight (+ bias)`, `weight [K, n]`.
#[derive(Clone, Copy, Debug)]
pub struct Product<'a> {
    pub weight: Weight<'a>,
    pub n: usize,
    pub bias: Option<&'a [f32]>,
}

/// Every product's `[m, n]` output, for products that share `x [m, K]`: all their columns
/// together are cut into `threads` runs of about equal length (whole 64-column tiles), and each
/// thread computes its run, which may cross from one product into the next.
pub fn matmul_many(
    x: &[f32],
    (m, k): (usize, usize),
    products: &[Product<'_>],
    threads: usize,
    simd: Simd,
) -> Vec<Vec<f32>> {
    assert!(
        x.len() >= m * k,
        "x holds {} values, [{m}, {k}] needs more",
        x.len()
    );
    for p in products {
        let n = p.n;
        let (w_len, needed) = match p.weight {
            Weight::Rows(w) | Weight::Cols(w) => (w.len(), k * n),
            Weight::Panels(w) => (w.len(), k * n.div_ceil(PANEL) * PANEL),
        };
        assert!(
            w_len >= needed,
            "the weight holds {w_len} values, [{k}, {n}] needs more"
        );
        if let Some(b) = p.bias {
            assert!(
                b.len() >= n,
                "the bias holds {} values, {n} needed",
                b.len()
            );
        }
    }
    let mut outs: Vec<Vec<f32>> = products.iter().map(|p| vec![0f32; m * p.n]).collect();
    if m == 0 {
        return outs;
    }
    // The runs: (product, first column, end column), split at tile boundaries.
    let total: usize = products.iter().map(|p| p.n).sum();
    let parts = threads.clamp(1, total.div_ceil(64).max(1));
    let per_part = total.div_ceil(parts).div_ceil(64) * 64;
    let mut runs: Vec<Vec<(usize, usize, usize)>> = vec![Vec::new(); parts];
    let (mut part, mut room) = (0, per_part);
    for (i, p) in products.iter().enumerate() {
        let mut j = 0;
        while j < p.n {
            let len = room.min(p.n - j);
            runs[part].push((i, j, j + len));
            j += len;
            room -= len;
            if room == 0 {
                // The last run takes whatever is left (the runs' room covers every column).
                (part, room) = if part + 1 < parts {
                    (part + 1, per_part)
                } else {
                    (part, usize::MAX)
                };
            }
        }
    }
    let out_ptrs: Vec<SendPtr> = outs.iter_mut().map(|o| SendPtr(o.as_mut_ptr())).collect();
    let run = |list: &[(usize, usize, usize)]| {
        for &(i, j0, j1) in list {
            let p = &products[i];
            let out = out_ptrs[i];
            // SAFETY: the slices were checked above; runs write disjoint column ranges.
            unsafe { columns(x, (m, k, p.n), p.weight, p.bias, out.0, (j0, j1), simd) };
        }
    };
    if runs.len() > 1 {
        runs.par_iter().for_each(|list| run(list));
    } else {
        runs.iter().for_each(|list| run(list));
    }
    outs
}

#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: the pointer is only written through at disjoint column ranges (see `matmul_many`).
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

/// Columns `j0..j1` of the product, written into `out` (row stride N).
///
/// # Safety
/// `x`, the weight, `bias` and `out` must hold the shapes' values; no other thread may touch
/// these columns of `out`.
#[allow(clippy::too_many_arguments)]
unsafe fn columns(
    x: &[f32],
    (m, k, n): (usize, usize, usize),
    weight: Weight<'_>,
    bias: Option<&[f32]>,
    out: *mut f32,
    (j0, j1): (usize, usize),
    simd: Simd,
) {
    let x = x.as_ptr();
    let bias = bias.map(<[f32]>::as_ptr);
    match weight {
        Weight::Rows(w) => unsafe {
            kernel(x, (m, k, n, n), Layout::Rows, w, bias, out, (j0, j1), simd)
        },
        Weight::Cols(w) => unsafe {
            kernel(x, (m, k, n, k), Layout::Cols, w, bias, out, (j0, j1), simd)
        },
        Weight::Panels(w) => {
            // Each panel is a [K, PANEL] row-major matrix of its own, with its own columns of
            // `out` and of the bias.
            for p in j0 / PANEL..j1.div_ceil(PANEL) {
                let at = p * PANEL;
                let range = (j0.max(at) - at, j1.min(at + PANEL) - at);
                let panel = &w[p * k * PANEL..(p + 1) * k * PANEL];
                // SAFETY: as the caller's; the offsets stay inside this panel's columns.
                unsafe {
                    kernel(
                        x,
                        (m, k, n, PANEL),
                        Layout::Rows,
                        panel,
                        bias.map(|b| b.add(at)),
                        out.add(at),
                        range,
                        simd,
                    )
                }
            }
        }
    }
}

/// The kernel for a layout and an instruction set: `shape` is `(m, k, n, the weight's row
/// stride)`, `out`'s row stride is n.
///
/// # Safety
/// As [`columns`].
#[allow(clippy::too_many_arguments)]
unsafe fn kernel(
    x: *const f32,
    shape: (usize, usize, usize, usize),
    layout: Layout,
    w: &[f32],
    bias: Option<*const f32>,
    out: *mut f32,
    range: (usize, usize),
    simd: Simd,
) {
    let w = w.as_ptr();
    match (simd, layout) {
        #[cfg(target_arch = "x86_64")]
        (Simd::Avx512, Layout::Rows) => unsafe { x86::rows_avx512(x, shape, w, bias, out, range) },
        #[cfg(target_arch = "x86_64")]
        (Simd::Avx512, Layout::Cols) => unsafe { x86::cols_avx512(x, shape, w, bias, out, range) },
        #[cfg(target_arch = "x86_64")]
        (Simd::Avx2, Layout::Rows) => unsafe { x86::rows_avx2(x, shape, w, bias, out, range) },
        #[cfg(target_arch = "x86_64")]
        (Simd::Avx2, Layout::Cols) => unsafe { x86::cols_avx2(x, shape, w, bias, out, range) },
        (_, Layout::Rows) => unsafe { generic::rows::<f32, 4, 4>(x, shape, w, bias, out, range) },
        (_, Layout::Cols) => unsafe { generic::cols::<f32, 4, 1>(x, shape, w, bias, out, range) },
    }
}

/// A vector of f32 lanes (one register). Implemented for plain `f32` (one lane) and, on x86-64,
/// for AVX2 and AVX-512 registers; the kernels are written once over it.
trait Lanes: Copy {
    const N: usize;
    unsafe fn zero() -> Self;
    unsafe fn splat(x: f32) -> Self;
    unsafe fn load(p: *const f32) -> Self;
    unsafe fn store(self, p: *mut f32);
    /// `self * b + c`
    unsafe fn mul_add(self, b: Self, c: Self) -> Self;
    unsafe fn sum(self) -> f32;
}

impl Lanes for f32 {
    const N: usize = 1;
    #[inline(always)]
    unsafe fn zero() -> Self {
        0.0
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        x
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        unsafe { *p }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        unsafe { *p = self }
    }
    #[inline(always)]
    unsafe fn mul_add(self, b: Self, c: Self) -> Self {
        self * b + c
    }
    #[inline(always)]
    unsafe fn sum(self) -> f32 {
        self
    }
}

/// The kernels, generic over the register type. Every function is `inline(always)` so that it
/// compiles inside the `target_feature` functions of `x86` with their instructions.
mod generic {
    use super::Lanes;

    /// Row tiles read the weight `PF_ROWS` rows ahead of their use (a strided stream, which the
    /// hardware prefetcher follows less well than a sequential one). In panels a row of a tile
    /// is 256 bytes, so 64 rows is 16 KiB ahead: on the 2-core Xeon a 50M decoding step took
    /// 10.42 against 10.75 ms with 16 rows and 10.50 against 10.92 (medians of 12 and 15 runs,
    /// alternated; 32 rows measured as 16). Only panels were measured. Weights of 64 rows or
    /// fewer (the tiny model's) are not prefetched: they sit in cache.
    const PF_ROWS: usize = 64;

    /// Dot-product tiles read the weight rows `PF_COLS` rows ahead of their use: 16 KiB ahead
    /// on the 50M model's tied head, whose steps it made 10% faster (7.95 against 8.79 ms, the
    /// median of 8 alternated runs; 16 rows ahead measured the same as 8).
    const PF_COLS: usize = 8;

    /// Ask for the cache line at `p` ahead of its use (a hint; nothing off x86-64).
    #[inline(always)]
    unsafe fn prefetch(p: *const f32) {
        #[cfg(target_arch = "x86_64")]
        unsafe {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            _mm_prefetch::<_MM_HINT_T0>(p as *const i8)
        };
        #[cfg(not(target_arch = "x86_64"))]
        let _ = p;
    }

    /// [`Weight::Rows`](super::Weight::Rows): tiles of `R` rows by `C` vectors of columns, then
    /// narrower tiles for the last columns, then one column at a time.
    #[inline(always)]
    pub unsafe fn rows<V: Lanes, const R: usize, const C: usize>(
        x: *const f32,
        (m, k, n, ws): (usize, usize, usize, usize),
        w: *const f32,
        bias: Option<*const f32>,
        out: *mut f32,
        (j0, j1): (usize, usize),
    ) {
        let mut j = j0;
        while j + C * V::N <= j1 {
            unsafe { rows_block::<V, R, C>(x, (m, k, n, ws), w, bias, out, j) };
            j += C * V::N;
        }
        while j + V::N <= j1 {
            unsafe { rows_block::<V, R, 1>(x, (m, k, n, ws), w, bias, out, j) };
            j += V::N;
        }
        while j < j1 {
            unsafe { rows_block::<f32, R, 1>(x, (m, k, n, ws), w, bias, out, j) };
            j += 1;
        }
    }

    /// Row groups: `full(i)` for rows `i .. i + R` while R rows are left, then `one(i)` for each
    /// of the last m % R rows.
    #[inline(always)]
    fn row_groups<const R: usize>(
        m: usize,
        mut full: impl FnMut(usize),
        mut one: impl FnMut(usize),
    ) {
        let mut i = 0;
        while i + R <= m {
            full(i);
            i += R;
        }
        while i < m {
            one(i);
            i += 1;
        }
    }

    /// Columns `j .. j + C * V::N` for every row, `R` rows at a time.
    #[inline(always)]
    unsafe fn rows_block<V: Lanes, const R: usize, const C: usize>(
        x: *const f32,
        (m, k, n, ws): (usize, usize, usize, usize),
        w: *const f32,
        bias: Option<*const f32>,
        out: *mut f32,
        j: usize,
    ) {
        let (x_at, out_at) = (
            |i: usize| unsafe { x.add(i * k) },
            |i: usize| unsafe { out.add(i * n) },
        );
        row_groups::<R>(
            m,
            |i| unsafe { rows_tile::<V, R, C>(x_at(i), (k, n, ws), w, bias, out_at(i), j) },
            |i| unsafe { rows_tile::<V, 1, C>(x_at(i), (k, n, ws), w, bias, out_at(i), j) },
        );
    }

    /// One tile: rows `x[0..R]` (stride k) times columns `j .. j + C * V::N` of `W [K, ..]`
    /// (row stride `ws`), into `out` (row stride n).
    #[inline(always)]
    unsafe fn rows_tile<V: Lanes, const R: usize, const C: usize>(
        x: *const f32,
        (k, n, ws): (usize, usize, usize),
        w: *const f32,
        bias: Option<*const f32>,
        out: *mut f32,
        j: usize,
    ) {
        unsafe {
            let mut acc = [[V::zero(); C]; R];
            for kk in 0..k {
                let row = w.add(kk * ws + j);
                if kk + PF_ROWS < k {
                    let ahead = row.add(PF_ROWS * ws);
                    for line in 0..(C * V::N).div_ceil(16) {
                        prefetch(ahead.add(line * 16));
                    }
                }
                let mut wv = [V::zero(); C];
                for (c, v) in wv.iter_mut().enumerate() {
                    *v = V::load(row.add(c * V::N));
                }
                for (r, sums) in acc.iter_mut().enumerate() {
                    let xv = V::splat(*x.add(r * k + kk));
                    for c in 0..C {
                        sums[c] = xv.mul_add(wv[c], sums[c]);
                    }
                }
            }
            for (r, sums) in acc.iter().enumerate() {
                for (c, &s) in sums.iter().enumerate() {
                    let col = j + c * V::N;
                    let s = match bias {
                        Some(b) => add(s, V::load(b.add(col))),
                        None => s,
                    };
                    s.store(out.add(r * n + col));
                }
            }
        }
    }

    #[inline(always)]
    unsafe fn add<V: Lanes>(a: V, b: V) -> V {
        unsafe { V::splat(1.0).mul_add(a, b) }
    }

    /// [`Weight::Cols`](super::Weight::Cols): `J` weight rows at a time against `R` input rows,
    /// each output a dot product over k (vectors, then the last k % V::N values one by one).
    /// The `J` rows lie next to each other, so the weight is still read as one sequential stream,
    /// which the hardware prefetcher follows; `J * R` independent sums keep the FMA units busy
    /// (one weight row at a time was bound by the FMAs' latency, not by memory).
    #[inline(always)]
    pub unsafe fn cols<V: Lanes, const R: usize, const J: usize>(
        x: *const f32,
        (m, k, n, _): (usize, usize, usize, usize),
        w: *const f32,
        bias: Option<*const f32>,
        out: *mut f32,
        (j0, j1): (usize, usize),
    ) {
        let mut j = j0;
        while j + J <= j1 {
            unsafe { cols_block::<V, R, J>(x, (m, k, n), w, bias, out, j) };
            j += J;
        }
        while j < j1 {
            unsafe { cols_block::<V, R, 1>(x, (m, k, n), w, bias, out, j) };
            j += 1;
        }
    }

    /// Columns `j .. j + J` (weight rows of `W^T [N, K]`) for every row, `R` rows at a time.
    #[inline(always)]
    unsafe fn cols_block<V: Lanes, const R: usize, const J: usize>(
        x: *const f32,
        (m, k, n): (usize, usize, usize),
        w: *const f32,
        bias: Option<*const f32>,
        out: *mut f32,
        j: usize,
    ) {
        let (x_at, out_at) = (
            |i: usize| unsafe { x.add(i * k) },
            |i: usize| unsafe { out.add(i * n) },
        );
        row_groups::<R>(
            m,
            |i| unsafe { cols_tile::<V, R, J>(x_at(i), (k, n), w, bias, out_at(i), j) },
            |i| unsafe { cols_tile::<V, 1, J>(x_at(i), (k, n), w, bias, out_at(i), j) },
        );
    }

    /// One tile: rows `x[0..R]` dotted with weight rows `j .. j + J` of `W^T [N, K]`.
    #[inline(always)]
    unsafe fn cols_tile<V: Lanes, const R: usize, const J: usize>(
        x: *const f32,
        (k, n): (usize, usize),
        w: *const f32,
        bias: Option<*const f32>,
        out: *mut f32,
        j: usize,
    ) {
        unsafe {
            let row = |c: usize| w.add((j + c) * k);
            let mut acc = [[V::zero(); J]; R];
            let body = k - k % V::N;
            let mut kk = 0;
            while kk < body {
                let mut wv = [V::zero(); J];
                for (c, v) in wv.iter_mut().enumerate() {
                    // The same offset PF_COLS rows further on, once per cache line (past the
                    // end it is only a hint: a prefetch never faults, nothing is read there).
                    if V::N >= 16 || kk.is_multiple_of(16) {
                        prefetch(w.wrapping_add((j + c + PF_COLS) * k + kk));
                    }
                    *v = V::load(row(c).add(kk));
                }
                for (r, sums) in acc.iter_mut().enumerate() {
                    let xv = V::load(x.add(r * k + kk));
                    for c in 0..J {
                        sums[c] = xv.mul_add(wv[c], sums[c]);
                    }
                }
                kk += V::N;
            }
            for (r, sums) in acc.iter().enumerate() {
                for (c, &s) in sums.iter().enumerate() {
                    let mut total = s.sum();
                    for t in body..k {
                        total += *x.add(r * k + t) * *row(c).add(t);
                    }
                    if let Some(b) = bias {
                        total += *b.add(j + c);
                    }
                    *out.add(r * n + j + c) = total;
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Lanes, generic};
    use std::arch::x86_64::*;

    #[derive(Clone, Copy)]
    struct Avx2(__m256);
    #[derive(Clone, Copy)]
    struct Avx512(__m512);

    impl Lanes for Avx2 {
        const N: usize = 8;
        #[inline(always)]
        unsafe fn zero() -> Self {
            Avx2(unsafe { _mm256_setzero_ps() })
        }
        #[inline(always)]
        unsafe fn splat(x: f32) -> Self {
            Avx2(unsafe { _mm256_set1_ps(x) })
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            Avx2(unsafe { _mm256_loadu_ps(p) })
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            unsafe { _mm256_storeu_ps(p, self.0) }
        }
        #[inline(always)]
        unsafe fn mul_add(self, b: Self, c: Self) -> Self {
            Avx2(unsafe { _mm256_fmadd_ps(self.0, b.0, c.0) })
        }
        #[inline(always)]
        unsafe fn sum(self) -> f32 {
            unsafe {
                let halves = _mm_add_ps(
                    _mm256_castps256_ps128(self.0),
                    _mm256_extractf128_ps(self.0, 1),
                );
                let pairs = _mm_add_ps(halves, _mm_movehl_ps(halves, halves));
                _mm_cvtss_f32(_mm_add_ss(pairs, _mm_shuffle_ps(pairs, pairs, 1)))
            }
        }
    }

    impl Lanes for Avx512 {
        const N: usize = 16;
        #[inline(always)]
        unsafe fn zero() -> Self {
            Avx512(unsafe { _mm512_setzero_ps() })
        }
        #[inline(always)]
        unsafe fn splat(x: f32) -> Self {
            Avx512(unsafe { _mm512_set1_ps(x) })
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            Avx512(unsafe { _mm512_loadu_ps(p) })
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            unsafe { _mm512_storeu_ps(p, self.0) }
        }
        #[inline(always)]
        unsafe fn mul_add(self, b: Self, c: Self) -> Self {
            Avx512(unsafe { _mm512_fmadd_ps(self.0, b.0, c.0) })
        }
        #[inline(always)]
        unsafe fn sum(self) -> f32 {
            unsafe { _mm512_reduce_add_ps(self.0) }
        }
    }

    /// `(m, k, n, the weight's row stride)`.
    type Shape = (usize, usize, usize, usize);

    // Register budgets: AVX-512 has 32 registers, so 4 rows x 4 vectors (64 columns) of sums
    // plus 4 weight vectors fit; AVX2 has 16, so 4 rows x 2 vectors (16 columns). Dot products
    // keep 4 x 4 sums on AVX-512 (4 input rows, 4 weight rows; measured on the 50M model's LM
    // head, 12.6 GB/s against 11.0 with 2 weight rows) and 4 x 2 on AVX2.
    macro_rules! kernel {
        ($name:ident, $features:literal, $kernel:ident::<$($params:tt),*>) => {
            #[target_feature(enable = $features)]
            pub unsafe fn $name(
                x: *const f32,
                shape: Shape,
                w: *const f32,
                bias: Option<*const f32>,
                out: *mut f32,
                range: (usize, usize),
            ) {
                unsafe { generic::$kernel::<$($params),*>(x, shape, w, bias, out, range) }
            }
        };
    }
    kernel!(rows_avx512, "avx512f", rows::<Avx512, 4, 4>);
    kernel!(cols_avx512, "avx512f", cols::<Avx512, 4, 4>);
    kernel!(rows_avx2, "avx2,fma", rows::<Avx2, 4, 2>);
    kernel!(cols_avx2, "avx2,fma", cols::<Avx2, 4, 2>);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The product in f64, one output at a time.
    fn reference(
        x: &[f32],
        (m, k, n): (usize, usize, usize),
        w_kn: &[f32],
        bias: Option<&[f32]>,
    ) -> Vec<f64> {
        let mut out = vec![0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = bias.map_or(0.0, |b| b[j] as f64);
                for t in 0..k {
                    s += x[i * k + t] as f64 * w_kn[t * n + j] as f64;
                }
                out[i * n + j] = s;
            }
        }
        out
    }

    fn values(len: usize, seed: u64) -> Vec<f32> {
        let mut rng = crate::rng::Rng::new(seed);
        (0..len).map(|_| rng.unit() as f32 * 2.0 - 1.0).collect()
    }

    /// Every instruction set, both layouts, with and without a bias, on one and two threads,
    /// with shapes that leave partial tiles in rows (m % 4), columns (n % 64, n % 16) and k
    /// (k % 16): each output within float rounding of the f64 product.
    #[test]
    fn every_path_gives_the_product() {
        for simd in Simd::available() {
            for &(m, k, n) in &[
                (1, 16, 64),
                (3, 37, 131),
                (4, 64, 200),
                (5, 512, 97),
                (9, 100, 1030),
                (16, 33, 7),
            ] {
                let x = values(m * k, 1);
                let w_kn = values(k * n, 2);
                // The same weight stored transposed: [N, K].
                let mut w_nk = vec![0f32; k * n];
                for t in 0..k {
                    for j in 0..n {
                        w_nk[j * k + t] = w_kn[t * n + j];
                    }
                }
                let b = values(n, 3);
                let panels = pack_panels(&w_kn, k, n);
                for bias in [None, Some(b.as_slice())] {
                    let expected = reference(&x, (m, k, n), &w_kn, bias);
                    for (layout, weight) in [
                        ("rows", Weight::Rows(&w_kn)),
                        ("cols", Weight::Cols(&w_nk)),
                        ("panels", Weight::Panels(&panels)),
                    ] {
                        for threads in [1, 2] {
                            let product = Product { weight, n, bias };
                            let out = matmul_many(&x, (m, k), &[product], threads, simd).remove(0);
                            for (idx, (&got, &want)) in out.iter().zip(&expected).enumerate() {
                                let tol = 1e-5 * (k as f64).sqrt() + 1e-6;
                                assert!(
                                    (got as f64 - want).abs() <= tol,
                                    "{simd:?} {layout} [{m},{k}]x[{k},{n}] bias {} threads {threads}: \
                                     out[{}][{}] = {got}, expected {want}",
                                    bias.is_some(),
                                    idx / n,
                                    idx % n
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    /// Several products in one call, their columns cut into runs that cross from one product
    /// into the next: each output equals its own product's.
    #[test]
    fn products_sharing_an_input_give_their_own_outputs() {
        let (m, k) = (4, 40);
        let x = values(m * k, 4);
        let ns = [100, 7, 130];
        let ws: Vec<Vec<f32>> = ns
            .iter()
            .enumerate()
            .map(|(i, &n)| values(k * n, 5 + i as u64))
            .collect();
        let bias = values(130, 9);
        let products: Vec<Product<'_>> = ns
            .iter()
            .zip(&ws)
            .enumerate()
            .map(|(i, (&n, w))| Product {
                weight: Weight::Rows(w),
                n,
                bias: (i == 2).then_some(&bias[..n]),
            })
            .collect();
        for simd in Simd::available() {
            for threads in [1, 2, 3] {
                let outs = matmul_many(&x, (m, k), &products, threads, simd);
                for (i, p) in products.iter().enumerate() {
                    let want = reference(&x, (m, k, p.n), &ws[i], p.bias);
                    for (idx, (&got, &w)) in outs[i].iter().zip(&want).enumerate() {
                        assert!(
                            (got as f64 - w).abs() <= 1e-5,
                            "{simd:?} threads {threads}: product {i} out[{idx}] = {got}, expected {w}"
                        );
                    }
                }
            }
        }
    }

    /// `[2, 70]` in panels: columns 0..64 first, row by row, then 64..70 padded to 64.
    #[test]
    fn panels_by_hand() {
        let (k, n) = (2, 70);
        let w: Vec<f32> = (0..k * n).map(|i| i as f32).collect();
        let p = pack_panels(&w, k, n);
        assert_eq!(p.len(), 2 * k * PANEL);
        assert_eq!(&p[..3], &[0.0, 1.0, 2.0]);
        assert_eq!(p[PANEL], 70.0, "row 1 of panel 0 starts at W[1][0]");
        assert_eq!(
            &p[2 * PANEL..2 * PANEL + 6],
            &[64.0, 65.0, 66.0, 67.0, 68.0, 69.0]
        );
        assert!(
            p[2 * PANEL + 6..3 * PANEL].iter().all(|&v| v == 0.0),
            "padding"
        );
        assert_eq!(p[3 * PANEL], 134.0, "row 1 of panel 1 starts at W[1][64]");
    }

    /// Packed weights through tensors: q, k and v of 8 rows in one call, with biases, equal the
    /// product by hand; a wrong K or bias length, or too many rows, is refused.
    #[test]
    fn linear_panels_gives_the_products() {
        use burn::tensor::Device;
        let device = Device::flex();
        let (m, k) = (8, 96);
        let x = values(m * k, 11);
        let xt = Tensor::<2>::from_data(TensorData::new(x.clone(), [m, k]), &device);
        let ns = [96, 48, 130];
        let ws: Vec<Vec<f32>> = ns.iter().map(|&n| values(k * n, n as u64)).collect();
        let bs: Vec<Vec<f32>> = ns.iter().map(|&n| values(n, 7 + n as u64)).collect();
        let tensor2 = |v: &Vec<f32>, n: usize| {
            Tensor::<2>::from_data(TensorData::new(v.clone(), [k, n]), &device)
        };
        let panels: Vec<Panels> = ns
            .iter()
            .zip(&ws)
            .map(|(&n, w)| Panels::of(&tensor2(w, n)).expect("flex"))
            .collect();
        let biases: Vec<Tensor<1>> = bs
            .iter()
            .map(|b| Tensor::<1>::from_data(TensorData::new(b.clone(), [b.len()]), &device))
            .collect();
        let outs = linear_panels(
            &xt,
            [
                (&panels[0], Some(&biases[0])),
                (&panels[1], None),
                (&panels[2], Some(&biases[2])),
            ],
        )
        .expect("taken");
        for (i, out) in outs.into_iter().enumerate() {
            let bias = (i != 1).then_some(bs[i].as_slice());
            let want = reference(&x, (m, k, ns[i]), &ws[i], bias);
            let got: Vec<f32> = out.into_data().iter::<f32>().collect();
            for (j, (&g, &w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g as f64 - w).abs() <= 1e-4,
                    "product {i} out[{j}]: {g} vs {w}"
                );
            }
        }
        let short = Tensor::<2>::from_data(TensorData::new(x[..m * 95].to_vec(), [m, 95]), &device);
        assert!(
            linear_panels(&short, [(&panels[0], None)]).is_none(),
            "K differs"
        );
        assert!(
            linear_panels(&xt, [(&panels[1], Some(&biases[0]))]).is_none(),
            "bias of 96 for 48"
        );
        let many = Tensor::<2>::zeros([FEW_ROWS + 1, k], &device);
        assert!(
            linear_panels(&many, [(&panels[0], None)]).is_none(),
            "too many rows"
        );
    }

    #[test]
    fn short_buffers_are_refused_by_name() {
        let x = vec![0f32; 4];
        let w = vec![0f32; 8];
        let err = std::panic::catch_unwind(move || {
            let product = Product {
                weight: Weight::Rows(&w),
                n: 4,
                bias: None,
            };
            matmul_many(&x, (1, 4), &[product], 1, Simd::Scalar)
        })
        .unwrap_err();
        let message = err.downcast_ref::<String>().unwrap();
        assert!(message.contains("the weight holds 8 values"), "{message}");
    }
}
