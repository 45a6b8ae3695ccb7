//! The token embedding's lookup on `device.autodiff()` over flex natively, with a backward pass
//! that adds the looked-up rows' gradients into the weight's gradient in place.
//!
//! burn's embedding backward makes a zeroed `[V, D]` gradient (on one thread, allocated twice by
//! flex: a zeroed buffer, then an aligned copy of it), adds the `B * T` rows into it, and the
//! autodiff graph then adds that to the gradient the weight already has: with a tied LM head,
//! the head's `[V, D]` gradient. For the 50M model that is three single-threaded passes over
//! 64 MiB and a fourth read, about 35 ms of every update step, while the other core waits.
//!
//! The lookup is the model's first operation, so its backward step runs last, after the tied
//! head's has registered its gradient. This op keeps the weight's autodiff tensor, takes that
//! gradient out of the graph's store, adds the `B * T` rows into it, and registers it back. An
//! untied embedding (no gradient yet) gets a fresh zeroed one, as before.
//!
//! Anything else (WebGPU, CUDA, plain flex, other dtypes) gets `None` and runs burn's
//! `Embedding::forward`; the tests hold the two equal, gradients included.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::tensor::{DType, Int, Tensor, TensorData};

use crate::adamw::dense;

/// `weight[ids]`: `[B, T, D]` rows of `weight [V, D]`, when the weight is f32 on
/// `device.autodiff()` over flex and every id is below `V`; `None` otherwise.
pub fn lookup(weight: &Tensor<2>, ids: &Tensor<2, Int>) -> Option<Tensor<3>> {
    if weight.dtype() != DType::F32 {
        return None;
    }
    let (w, w_node) = weight
        .clone()
        .try_into_primitive::<Autodiff<Flex>>()
        .ok()?
        .into_parts();
    let [vocab, dim] = weight.dims();
    let [b, t] = ids.dims();
    let ids: Vec<usize> = ids
        .to_data()
        .convert::<i64>()
        .iter::<i64>()
        .map(|id| usize::try_from(id).ok().filter(|&id| id < vocab))
        .collect::<Option<_>>()?;
    let w = dense(w);
    let rows = &w.storage::<f32>()[..vocab * dim];
    let mut out = Vec::with_capacity(ids.len() * dim);
    for &id in &ids {
        out.extend_from_slice(&rows[id * dim..(id + 1) * dim]);
    }
    let y = FlexTensor::from_data(TensorData::new(out, [b, t, dim]));
    let out = match EmbeddingBackward
        .prepare::<NoCheckpointing>([w_node])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(
            State {
                weight: weight.clone(),
                ids,
                vocab,
                dim,
            },
            y,
        ),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    Some(Tensor::from_primitive::<Autodiff<Flex>>(out))
}

/// What the backward pass needs: the weight (its node names the gradient to add into) and the
/// ids looked up.
#[derive(Clone, Debug)]
struct State {
    weight: Tensor<2>,
    ids: Vec<usize>,
    vocab: usize,
    dim: usize,
}

#[derive(Debug)]
struct EmbeddingBackward;

impl Backward<Flex, 1> for EmbeddingBackward {
    type State = State;

    fn backward(self, ops: Ops<State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = dense(grads.consume::<Flex>(&ops.node));
        let [Some(parent)] = ops.parents else {
            return;
        };
        let State {
            weight,
            ids,
            vocab,
            dim,
        } = ops.state;
        let weight = weight
            .try_into_primitive::<Autodiff<Flex>>()
            .expect("checked when looked up");
        let n = vocab * dim;
        // The gradient the weight has so far (the tied head's) leaves the store, and the rows are
        // added into it in place, so registering the sum below adds nothing more. It is taken
        // out, not looked at first: a second handle on its buffer would make the in-place add
        // copy all of it. One this op cannot add into goes back, and `register` adds the two.
        let fresh = || FlexTensor::from_data(TensorData::new(vec![0f32; n], [vocab, dim]));
        let mut dw = match grads.remove::<Flex>(&weight) {
            Some(g)
                if g.dtype() == DType::F32 && g.layout().shape().dims::<2>() == [vocab, dim] =>
            {
                dense(g)
            }
            Some(g) => {
                grads.register::<Flex>(parent.id, g);
                fresh()
            }
            None => fresh(),
        };
        {
            let g = &mut dw.storage_mut::<f32>()[..n];
            let rows = &dy.storage::<f32>()[..ids.len() * dim];
            for (row, &id) in rows.chunks_exact(dim).zip(&ids) {
                for (s, &d) in g[id * dim..(id + 1) * dim].iter_mut().zip(row) {
                    *s += d;
                }
            }
        }
        grads.register::<Flex>(parent.id, dw);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Param;
    use burn::nn::{Embedding, EmbeddingConfig};
    use burn::tensor::Device;

    fn flat<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().iter::<f32>().collect()
    }

    fn close(got: &[f32], want: &[f32], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: lengths");
        for (i, (a, b)) in got.iter().zip(want).enumerate() {
            assert!((a - b).abs() <= 1e-5, "{what}[{i}]: {a} vs {b}");
        }
    }

    /// Lookups, then a loss through them and, when `tied`, through `h @ W^T` as a tied head
    /// does: the weight's gradient by this op and by burn's `Embedding::forward`, with ids
    /// that repeat (their rows' gradients add up).
    fn gradients(tied: bool, ours: bool) -> (Vec<f32>, Vec<f32>) {
        let device = Device::flex().autodiff();
        let (vocab, dim) = (11, 6);
        let mut rng = crate::rng::Rng::new(7);
        let mut random = |dims: Vec<usize>| {
            let n = dims.iter().product();
            let values: Vec<f32> = (0..n).map(|_| rng.unit() as f32 * 2.0 - 1.0).collect();
            TensorData::new(values, dims)
        };
        let mut embedding: Embedding = EmbeddingConfig::new(vocab, dim).init(&device);
        let weight = Tensor::<2>::from_data(random(vec![vocab, dim]), &device);
        embedding.weight = Param::from_tensor(weight.require_grad());
        let ids = Tensor::<2, Int>::from_data(
            TensorData::new(vec![3i64, 7, 3, 0, 10, 3, 7, 1], [2, 4]),
            &device,
        );
        let w = embedding.weight.val();
        let x = if ours {
            lookup(&w, &ids).expect("f32 on autodiff flex")
        } else {
            embedding.forward(ids)
        }; // [2, 4, 6]
        let r = Tensor::<3>::from_data(random(vec![2, 4, dim]), &device);
        let mut loss = (x.clone() * r).sum();
        if tied {
            // As the model's tied head: with this op, through gemm_linear, whose backward step
            // registers the weight's gradient before the lookup's runs (the path that adds in
            // place); with burn's, `h @ W^T`.
            let h = x.clone().reshape([8, dim]);
            let logits = if ours {
                crate::model::gemm_linear::linear(&h, &w, None, true).expect("f32 on flex")
            } else {
                h.matmul(w.clone().transpose())
            }; // [8, V]
            let s = Tensor::<2>::from_data(random(vec![8, vocab]), &device);
            loss = loss + (logits * s).sum();
        }
        let grads = loss.backward();
        let g = w.grad(&grads).expect("the weight has a gradient");
        (flat(x.inner()), flat(g))
    }

    #[test]
    fn values_and_gradients_equal_burns_embedding() {
        for tied in [false, true] {
            let (x_ours, g_ours) = gradients(tied, true);
            let (x_burn, g_burn) = gradients(tied, false);
            close(&x_ours, &x_burn, "lookup");
            close(
                &g_ours,
                &g_burn,
                if tied { "tied gradient" } else { "gradient" },
            );
        }
    }

    #[test]
    fn the_gradient_by_hand() {
        // W [3, 2]; ids [[2, 0, 2]]; loss = sum(W[ids] * r): dW[i] = sum of r's rows where id i.
        let device = Device::flex().autodiff();
        let w = Tensor::<2>::from_data(
            TensorData::new(vec![1f32, 2., 3., 4., 5., 6.], [3, 2]),
            &device,
        )
        .require_grad();
        let ids = Tensor::<2, Int>::from_data(TensorData::new(vec![2i64, 0, 2], [1, 3]), &device);
        let x = lookup(&w, &ids).unwrap();
        assert_eq!(flat(x.clone().inner()), [5., 6., 1., 2., 5., 6.]);
        let r = Tensor::<3>::from_data(
            TensorData::new(vec![1f32, 10., 100., 1000., 0.5, 0.25], [1, 3, 2]),
            &device,
        );
        let grads = (x * r).sum().backward();
        assert_eq!(
            flat(w.grad(&grads).unwrap()),
            [100., 1000., 0., 0., 1.5, 10.25]
        );
    }

    #[test]
    fn other_devices_and_bad_ids_are_left_to_burn() {
        let plain = Device::flex();
        let w = Tensor::<2>::zeros([4, 2], &plain);
        let ids = Tensor::<2, Int>::from_data(TensorData::new(vec![1i64], [1, 1]), &plain);
        assert!(
            lookup(&w, &ids).is_none(),
            "plain flex: burn's lookup is as fast"
        );
        let device = plain.autodiff();
        let w = Tensor::<2>::zeros([4, 2], &device).require_grad();
        for bad in [4i64, -1] {
            let ids = Tensor::<2, Int>::from_data(TensorData::new(vec![bad], [1, 1]), &device);
            assert!(lookup(&w, &ids).is_none(), "id {bad}");
        }
    }
}
