//! The keys and values of every layer in plain memory with room to grow: the KV cache that
//! [`decode_step`](super::decode_step) writes in place, natively on flex in f32, converted from
//! and back to burn's tensors.

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::tensor::{DType, Device, Int, Tensor, TensorData};

use super::few_rows::contiguous;

/// The keys and values of every layer with room for more positions, for decoding on flex.
#[derive(Clone, Debug)]
pub struct NativeKv {
    pub(crate) rows: usize,
    pub(crate) kv_heads: usize,
    pub(crate) head_dim: usize,
    /// Positions each row has room for.
    pub(crate) cap: usize,
    /// Positions held: P.
    pub(crate) len: usize,
    /// Per layer, keys and values `[B, K, cap, hd]`, rotary embedding applied to the keys.
    pub(crate) layers: Vec<(Vec<f32>, Vec<f32>)>,
    /// `[B, cap]`: 1 for a real token, 0 for left padding.
    pub(crate) mask: Vec<u8>,
    /// `[B]`: the position id of each row's next token.
    pub(crate) next_position: Vec<i64>,
}

impl NativeKv {
    /// The cache burn's pass made: per layer `(keys, values)` `[B, K, P, hd]`, `mask [B, P]`,
    /// `next_position [B, 1]`. `None` unless the keys and values are f32 on plain flex.
    pub fn of(
        layers: &[(Tensor<4>, Tensor<4>)],
        mask: &Tensor<2, Int>,
        next_position: &Tensor<2, Int>,
    ) -> Option<NativeKv> {
        let [rows, len] = mask.dims();
        let (kv_heads, head_dim) = match layers.first() {
            Some((k, _)) => (k.dims()[1], k.dims()[3]),
            None => (0, 0),
        };
        let cap = len + len.max(32);
        let mut out = Vec::with_capacity(layers.len());
        for (keys, values) in layers {
            let mut pair = [Vec::new(), Vec::new()];
            for (dst, t) in pair.iter_mut().zip([keys, values]) {
                if t.dims() != [rows, kv_heads, len, head_dim] {
                    return None;
                }
                let t = dense_f32(t.clone())?;
                *dst = spread(
                    values_of(&t),
                    rows * kv_heads,
                    len * head_dim,
                    cap * head_dim,
                );
            }
            let [k, v] = pair;
            out.push((k, v));
        }
        let mask_values: Vec<u8> = mask
            .to_data()
            .iter::<i64>()
            .map(|m| u8::from(m != 0))
            .collect();
        let next_position: Vec<i64> = next_position.to_data().iter::<i64>().collect();
        if next_position.len() != rows {
            return None;
        }
        Some(NativeKv {
            rows,
            kv_heads,
            head_dim,
            cap,
            len,
            layers: out,
            mask: spread(&mask_values, rows, len, cap),
            next_position,
        })
    }

    /// Positions held.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Back to burn's form: per layer `(keys, values)` `[B, K, P, hd]`, the mask `[B, P]` and
    /// the next position ids `[B, 1]`, on `device`.
    #[allow(clippy::type_complexity)]
    pub fn to_tensors(
        &self,
        device: &Device,
    ) -> (Vec<(Tensor<4>, Tensor<4>)>, Tensor<2, Int>, Tensor<2, Int>) {
        let (b, k, p, hd) = (self.rows, self.kv_heads, self.len, self.head_dim);
        let tensor = |values: &[f32]| {
            let packed = spread(values, b * k, self.cap * hd, p * hd);
            Tensor::<4>::from_data(TensorData::new(packed, [b, k, p, hd]), device)
        };
        let layers = self
            .layers
            .iter()
            .map(|(keys, values)| (tensor(keys), tensor(values)))
            .collect();
        let mask: Vec<i64> = spread(&self.mask, b, self.cap, p)
            .into_iter()
            .map(i64::from)
            .collect();
        let mask = Tensor::<2, Int>::from_data(TensorData::new(mask, [b, p]), device);
        let next = Tensor::<2, Int>::from_data(
            TensorData::new(self.next_position.clone(), [b, 1]),
            device,
        );
        (layers, mask, next)
    }

    /// Room for at least one more position.
    pub(crate) fn reserve_one(&mut self) {
        if self.len < self.cap {
            return;
        }
        let cap = self.cap * 2;
        let hd = self.head_dim;
        let groups = self.rows * self.kv_heads;
        for (keys, values) in &mut self.layers {
            *keys = spread(keys, groups, self.cap * hd, cap * hd);
            *values = spread(values, groups, self.cap * hd, cap * hd);
        }
        self.mask = spread(&self.mask, self.rows, self.cap, cap);
        self.cap = cap;
    }
}

/// `groups` runs of `from` values each, laid `to` apart (padded with zeros, or cut to `to`).
pub(crate) fn spread<T: Copy + Default>(
    values: &[T],
    groups: usize,
    from: usize,
    to: usize,
) -> Vec<T> {
    let mut out = vec![T::default(); groups * to];
    let keep = from.min(to);
    for g in 0..groups {
        out[g * to..g * to + keep].copy_from_slice(&values[g * from..g * from + keep]);
    }
    out
}

/// `t` as a contiguous f32 flex tensor, or `None`.
pub(crate) fn dense_f32<const D: usize>(t: Tensor<D>) -> Option<FlexTensor> {
    if t.dtype() != DType::F32 {
        return None;
    }
    Some(contiguous(t.try_into_primitive::<Flex>().ok()?))
}

/// The values of a contiguous flex tensor.
pub(crate) fn values_of(t: &FlexTensor) -> &[f32] {
    let (from, to) = t
        .layout()
        .contiguous_offsets()
        .expect("made contiguous by dense_f32");
    &t.storage::<f32>()[from..to]
}
