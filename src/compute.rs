//! Which backend runs the tensors, and reading their values back.
//!
//! burn 0.22 picks the backend at runtime through a [`Device`]. The page asks for WebGPU and
//! falls back to `flex` (pure-Rust CPU); the CLI takes `cpu | wgpu | cuda`. Both describe the
//! result with a [`Compute`]: the device, which backend it is, and the adapter's own name.

use burn::tensor::{Device, Tensor};

/// The backends a ppo-lens build can run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum BackendKind {
    /// WebGPU in a browser (burn's `webgpu` feature, wasm32 only).
    WebGpu,
    /// wgpu natively (Vulkan, Metal or DX12 chosen by wgpu; lavapipe works on a CPU-only Linux).
    Wgpu,
    /// CUDA (our `cuda` cargo feature, native only).
    Cuda,
    /// burn's pure-Rust CPU backend; runs everywhere, including wasm32.
    Flex,
}

impl BackendKind {
    /// The name shown to people: in the page header, in `doctor`, in logs.
    pub fn label(self) -> &'static str {
        match self {
            BackendKind::WebGpu => "WebGPU",
            BackendKind::Wgpu => "wgpu",
            BackendKind::Cuda => "CUDA",
            BackendKind::Flex => "flex (CPU)",
        }
    }

    /// The short name used in URLs and configs (`?backend=flex`, `device: cpu`).
    pub fn key(self) -> &'static str {
        match self {
            BackendKind::WebGpu => "webgpu",
            BackendKind::Wgpu => "wgpu",
            BackendKind::Cuda => "cuda",
            BackendKind::Flex => "flex",
        }
    }

    /// Parses a short name; `cpu` is accepted as another name for `flex`.
    pub fn parse(name: &str) -> Result<Self, String> {
        match name.trim().to_ascii_lowercase().as_str() {
            "webgpu" => Ok(BackendKind::WebGpu),
            "wgpu" => Ok(BackendKind::Wgpu),
            "cuda" => Ok(BackendKind::Cuda),
            "flex" | "cpu" => Ok(BackendKind::Flex),
            other => Err(format!(
                "unknown backend `{other}`: expected one of webgpu, wgpu, cuda, flex (or cpu)"
            )),
        }
    }
}

/// A device ready for tensors, with what it is.
#[derive(Clone, Debug)]
pub struct Compute {
    pub device: Device,
    pub kind: BackendKind,
    /// The adapter as it names itself (`SwiftShader Device (Subzero)`, `NVIDIA H100`), when the
    /// backend reports one; `flex` does not.
    pub adapter: Option<String>,
}

impl Compute {
    /// burn's pure-Rust CPU backend. Always available.
    pub fn flex() -> Self {
        Compute {
            device: Device::flex(),
            kind: BackendKind::Flex,
            adapter: None,
        }
    }

    /// Initialises burn's wgpu runtime. In a browser this is WebGPU, and it must run before any
    /// tensor is made on the device (burn panics with "Service not yet initialized" otherwise).
    /// Fails with the adapter request's error when there is no usable adapter.
    pub async fn wgpu() -> Result<Self, String> {
        let device = Device::wgpu_options()
            .init_async()
            .await
            .map_err(|err| format!("could not initialise wgpu: {err}"))?;
        let kind = if cfg!(target_arch = "wasm32") {
            BackendKind::WebGpu
        } else {
            BackendKind::Wgpu
        };
        Ok(Self::describe(device, kind))
    }

    /// Wraps an already initialised device, asking it for its adapter name.
    pub fn describe(device: Device, kind: BackendKind) -> Self {
        let adapter = device
            .identity()
            .map(|identity| identity.name)
            .filter(|name| !name.is_empty());
        Compute {
            device,
            kind,
            adapter,
        }
    }

    /// `WebGPU · SwiftShader Device (Subzero)`, or just the backend label without an adapter.
    pub fn summary(&self) -> String {
        match &self.adapter {
            Some(adapter) => format!("{} · {adapter}", self.kind.label()),
            None => self.kind.label().to_string(),
        }
    }
}

/// Reads a float tensor back as `f32` values in row-major order.
///
/// Asynchronous because a browser cannot block on a GPU read; native callers run it with
/// [`block_on`].
pub async fn read_f32<const D: usize>(tensor: Tensor<D>) -> Result<Vec<f32>, String> {
    let data = tensor
        .into_data_async()
        .await
        .map_err(|err| format!("reading a tensor back failed: {err}"))?;
    data.try_into_vec_as::<f32>()
        .map_err(|err| format!("tensor data cannot be read as f32: {err:?}"))
}

/// Milliseconds on a monotonic clock: `performance.now()` in a browser, `Instant` natively.
pub fn now_ms() -> f64 {
    thread_local! {
        static START: web_time::Instant = web_time::Instant::now();
    }
    START.with(|start| start.elapsed().as_secs_f64() * 1000.0)
}

/// How long the page's thread may compute before it hands the browser a turn.
pub const SLICE_MS: f64 = 12.0;

/// Lets the browser draw a frame and handle input when this thread has computed for more than
/// [`SLICE_MS`] since it last did: long loops (decoding, the update) call this between steps so
/// the page stays responsive while it trains. Natively it does nothing.
pub async fn yield_to_browser() {
    #[cfg(target_arch = "wasm32")]
    {
        use std::cell::Cell;
        thread_local! {
            static LAST: Cell<f64> = const { Cell::new(0.0) };
        }
        if now_ms() - LAST.get() < SLICE_MS {
            return;
        }
        // A zero-delay timeout queues a new task: the browser renders and handles events first.
        let promise = js_sys::Promise::new(&mut |resolve, _reject| {
            if let Some(window) = web_sys::window() {
                let _ = window.set_timeout_with_callback(&resolve);
            } else {
                let _ = resolve.call0(&wasm_bindgen::JsValue::NULL);
            }
        });
        let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
        LAST.set(now_ms());
    }
}

/// Runs a future to completion on the current thread (native only; the browser has its own
/// executor). Tensor reads on native backends complete without needing an outside reactor.
#[cfg(not(target_arch = "wasm32"))]
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    use std::thread::{self, Thread};

    struct ThreadWaker(Thread);
    impl Wake for ThreadWaker {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }

    let waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        match future.as_mut().poll(&mut context) {
            Poll::Ready(output) => return output,
            Poll::Pending => thread::park(),
        }
    }
}

/// Whether an adapter described as `description` (its name, vendor, architecture, driver, as
/// the browser or wgpu gives them) is a GPU emulated on the CPU: SwiftShader (Chromium's),
/// llvmpipe and lavapipe (Mesa's), WARP (Windows' "Microsoft Basic Render Driver"). On one,
/// WebGPU runs the same shaders far slower than flex runs the same computation.
pub fn is_software_adapter(description: &str) -> bool {
    let d = description.to_ascii_lowercase();
    [
        "swiftshader",
        "llvmpipe",
        "lavapipe",
        "softpipe",
        "basic render driver",
    ]
    .iter()
    .any(|name| d.contains(name))
        || d.split(|c: char| !c.is_ascii_alphanumeric())
            .any(|word| word == "warp")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn software_adapters_are_told_from_gpus() {
        for software in [
            "google swiftshader",
            "SwiftShader Device (Subzero)",
            "llvmpipe (LLVM 15.0.6, 256 bits)",
            "mesa lavapipe",
            "Microsoft Basic Render Driver",
            "microsoft warp",
        ] {
            assert!(is_software_adapter(software), "{software}");
        }
        for gpu in [
            "NVIDIA H100 80GB HBM3",
            "intel gen-12lp",
            "apple metal-3",
            "AMD Radeon RX 7900 XTX",
            "nvidia ampere",
            "qualcomm adreno (TM) 740",
            "",
        ] {
            assert!(!is_software_adapter(gpu), "{gpu}");
        }
    }

    #[test]
    fn backend_names_round_trip_and_cpu_means_flex() {
        for kind in [
            BackendKind::WebGpu,
            BackendKind::Wgpu,
            BackendKind::Cuda,
            BackendKind::Flex,
        ] {
            assert_eq!(BackendKind::parse(kind.key()), Ok(kind));
        }
        assert_eq!(BackendKind::parse(" CPU "), Ok(BackendKind::Flex));
        let err = BackendKind::parse("tpu").unwrap_err();
        assert!(err.contains("`tpu`") && err.contains("flex"), "{err}");
    }

    #[test]
    fn flex_reads_back_what_it_was_given() {
        let compute = Compute::flex();
        assert_eq!(compute.summary(), "flex (CPU)");
        let t = Tensor::<2>::from_floats([[1.5, -2.0], [0.25, 4.0]], &compute.device);
        assert_eq!(
            block_on(read_f32(t * 2.0)).unwrap(),
            vec![3.0, -4.0, 0.5, 8.0]
        );
    }
}
