//! Safe wrappers over the C++ shim (train/shim/mtkit_shim.cpp, compiled by build.rs): the
//! LibTorch calls tch 0.24 does not generate. `_fused_adamw_` and the `_foreach_*` ops keep the
//! optimizer to a handful of kernel launches per step; the autocast dtype makes CUDA autocast
//! bf16 (LibTorch's CUDA default is fp16, which would need a gradient scaler); the SDPA order
//! picks cuDNN attention on Hopper.

use std::ffi::{c_char, c_int, CStr};

use anyhow::{anyhow, bail, Result};
use tch::{Device, Kind, Tensor};
use torch_sys::C_tensor;

extern "C" {
    fn mtkit_shim_free(s: *mut c_char);
    fn mtkit_autocast_enter(
        device: c_int,
        dtype: c_int,
        prev_enabled: *mut bool,
        prev_dtype: *mut c_int,
    ) -> *mut c_char;
    fn mtkit_autocast_exit(device: c_int, prev_enabled: bool, prev_dtype: c_int) -> *mut c_char;
    fn mtkit_autocast_state(device: c_int, dtype: *mut c_int, enabled: *mut bool) -> *mut c_char;
    fn mtkit_fused_adamw(
        params: *const *mut C_tensor,
        grads: *const *mut C_tensor,
        exp_avgs: *const *mut C_tensor,
        exp_avg_sqs: *const *mut C_tensor,
        n: i64,
        step: *mut C_tensor,
        lr: f64,
        beta1: f64,
        beta2: f64,
        weight_decay: f64,
        eps: f64,
        found_inf: *mut C_tensor,
    ) -> *mut c_char;
    fn mtkit_total_norm(ts: *const *mut C_tensor, n: i64, out: *mut *mut C_tensor) -> *mut c_char;
    fn mtkit_foreach_mul_(ts: *const *mut C_tensor, n: i64, scale: *mut C_tensor) -> *mut c_char;
    fn mtkit_foreach_zero_(ts: *const *mut C_tensor, n: i64) -> *mut c_char;
    fn mtkit_set_sdp_priority(order: *const i64, n: i64) -> *mut c_char;
    fn mtkit_sdp_priority(out: *mut i64, cap: i64, len: *mut i64) -> *mut c_char;
    fn mtkit_cuda_capability(index: c_int) -> c_int;
}

/// Turns the shim's error string (NULL: success) into a Result, freeing it.
fn check(err: *mut c_char, what: &str) -> Result<()> {
    if err.is_null() {
        return Ok(());
    }
    // SAFETY: a non-null return is a NUL-terminated string malloc'ed by the shim.
    let msg = unsafe { CStr::from_ptr(err) }
        .to_string_lossy()
        .into_owned();
    unsafe { mtkit_shim_free(err) };
    Err(anyhow!("{what}: {msg}"))
}

fn ptrs(ts: &[Tensor]) -> Vec<*mut C_tensor> {
    ts.iter().map(|t| t.as_ptr() as *mut C_tensor).collect()
}

/// The device-type code of the shim: 0 CPU, 1 CUDA.
fn device_code(device: Device) -> c_int {
    if device.is_cuda() {
        1
    } else {
        0
    }
}

/// LibTorch's ScalarType code of the floating kinds autocast takes.
fn kind_code(kind: Kind) -> c_int {
    match kind {
        Kind::Half => 5,
        Kind::Float => 6,
        Kind::Double => 7,
        Kind::BFloat16 => 15,
        other => panic!("autocast has no {other:?} mode"),
    }
}

fn kind_of_code(code: c_int) -> Option<Kind> {
    Some(match code {
        5 => Kind::Half,
        6 => Kind::Float,
        7 => Kind::Double,
        15 => Kind::BFloat16,
        _ => return None,
    })
}

/// Runs `f` under autocast to `dtype` on `device`'s type (CPU or CUDA), as `torch.autocast`
/// does: the previous state comes back afterwards, and the cache of cast weights is dropped
/// when the outermost region ends. Autocast state is per thread in LibTorch, so it holds for
/// what `f` runs on this thread.
pub fn autocast<T>(device: Device, dtype: Kind, f: impl FnOnce() -> T) -> T {
    let dev = device_code(device);
    let (mut prev_enabled, mut prev_dtype) = (false, 0);
    // SAFETY: plain out-parameters.
    check(
        unsafe { mtkit_autocast_enter(dev, kind_code(dtype), &mut prev_enabled, &mut prev_dtype) },
        "autocast",
    )
    .expect("setting LibTorch's autocast state cannot fail");
    let out = f();
    check(
        unsafe { mtkit_autocast_exit(dev, prev_enabled, prev_dtype) },
        "autocast",
    )
    .expect("restoring LibTorch's autocast state cannot fail");
    out
}

/// Autocast's dtype for `device`'s type on this thread, and whether it is on.
pub fn autocast_state(device: Device) -> (Kind, bool) {
    let (mut code, mut enabled) = (0, false);
    // SAFETY: plain out-parameters.
    check(
        unsafe { mtkit_autocast_state(device_code(device), &mut code, &mut enabled) },
        "autocast",
    )
    .expect("reading LibTorch's autocast state cannot fail");
    (
        kind_of_code(code).unwrap_or_else(|| panic!("autocast dtype code {code}")),
        enabled,
    )
}

/// AdamW's hyper-parameters for one fused update.
#[derive(Clone, Copy, Debug)]
pub struct AdamW {
    /// Learning rate.
    pub lr: f64,
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Decoupled weight decay (0 for parameters that take none).
    pub weight_decay: f64,
    /// Denominator epsilon.
    pub eps: f64,
}

/// `torch.optim.AdamW(fused=True)`'s step over `params` (in place: parameters, first and
/// second moments), with bias correction from `step`, a float32 scalar on their device that
/// the caller has already incremented (as torch.optim does; 0 would divide by zero). When
/// `found_inf` (a float32 scalar) is 1 the kernel leaves everything unchanged.
pub fn fused_adamw(
    params: &[Tensor],
    grads: &[Tensor],
    exp_avgs: &[Tensor],
    exp_avg_sqs: &[Tensor],
    step: &Tensor,
    h: AdamW,
    found_inf: Option<&Tensor>,
) -> Result<()> {
    let n = params.len();
    if grads.len() != n || exp_avgs.len() != n || exp_avg_sqs.len() != n {
        bail!("fused AdamW: parameter, gradient and moment lists differ in length");
    }
    let (p, g, m, v) = (ptrs(params), ptrs(grads), ptrs(exp_avgs), ptrs(exp_avg_sqs));
    let inf = found_inf.map_or(std::ptr::null_mut(), |t| t.as_ptr() as *mut C_tensor);
    // SAFETY: every pointer is a live at::Tensor owned by the slices above, for the call.
    check(
        unsafe {
            mtkit_fused_adamw(
                p.as_ptr(),
                g.as_ptr(),
                m.as_ptr(),
                v.as_ptr(),
                n as i64,
                step.as_ptr() as *mut C_tensor,
                h.lr,
                h.beta1,
                h.beta2,
                h.weight_decay,
                h.eps,
                inf,
            )
        },
        "fused AdamW",
    )
}

/// The global L2 norm of `ts` (the norm of their norms), a float32 scalar on their device:
/// one `_foreach_norm` launch and no host read.
pub fn total_norm(ts: &[Tensor]) -> Result<Tensor> {
    let p = ptrs(ts);
    let mut out: *mut C_tensor = std::ptr::null_mut();
    // SAFETY: live tensors; `out` receives a new at::Tensor that from_ptr takes ownership of.
    check(
        unsafe { mtkit_total_norm(p.as_ptr(), p.len() as i64, &mut out) },
        "gradient norm",
    )?;
    Ok(unsafe { Tensor::from_ptr(out) })
}

/// Multiplies every tensor of `ts` in place by the 0-dim tensor `scale` (on their device).
pub fn foreach_mul_(ts: &[Tensor], scale: &Tensor) -> Result<()> {
    let p = ptrs(ts);
    // SAFETY: live tensors for the call.
    check(
        unsafe { mtkit_foreach_mul_(p.as_ptr(), p.len() as i64, scale.as_ptr() as *mut C_tensor) },
        "gradient scaling",
    )
}

/// Zeroes every tensor of `ts` in place.
pub fn foreach_zero_(ts: &[Tensor]) -> Result<()> {
    let p = ptrs(ts);
    // SAFETY: live tensors for the call.
    check(
        unsafe { mtkit_foreach_zero_(p.as_ptr(), p.len() as i64) },
        "zeroing gradients",
    )
}

/// SDPA backends, in `at::SDPBackend`'s numbering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SdpBackend {
    /// The reference implementation (any device, any dtype).
    Math = 0,
    /// FlashAttention-2.
    Flash = 1,
    /// Memory-efficient attention (xformers').
    Efficient = 2,
    /// cuDNN's fused attention.
    Cudnn = 3,
    /// A backend registered from outside LibTorch (PrivateUse1).
    Overrideable = 4,
}

impl SdpBackend {
    /// The backend of an `at::SDPBackend` code (`_fused_sdp_choice`'s answer too).
    pub fn from_code(code: i64) -> Option<SdpBackend> {
        Some(match code {
            0 => SdpBackend::Math,
            1 => SdpBackend::Flash,
            2 => SdpBackend::Efficient,
            3 => SdpBackend::Cudnn,
            4 => SdpBackend::Overrideable,
            _ => return None,
        })
    }

    /// Its name, as `MTKIT_SDPA` takes it.
    pub fn name(self) -> &'static str {
        match self {
            SdpBackend::Math => "math",
            SdpBackend::Flash => "flash",
            SdpBackend::Efficient => "efficient",
            SdpBackend::Cudnn => "cudnn",
            SdpBackend::Overrideable => "overrideable",
        }
    }
}

/// Sets the order in which SDPA tries its backends (process-wide; every backend once, as
/// [`sdp_priority`] lists them).
pub fn set_sdp_priority(order: &[SdpBackend]) -> Result<()> {
    let codes: Vec<i64> = order.iter().map(|b| *b as i64).collect();
    // SAFETY: a live slice for the call.
    check(
        unsafe { mtkit_set_sdp_priority(codes.as_ptr(), codes.len() as i64) },
        "SDPA backend order",
    )
}

/// The order in which SDPA tries its backends (codes it has no name for are left out).
pub fn sdp_priority() -> Result<Vec<SdpBackend>> {
    let mut buf = [0i64; 16];
    let mut len = 0i64;
    // SAFETY: `buf` has room for 16 codes and the shim writes at most that many.
    check(
        unsafe { mtkit_sdp_priority(buf.as_mut_ptr(), buf.len() as i64, &mut len) },
        "SDPA backend order",
    )?;
    Ok(buf[..(len as usize).min(buf.len())]
        .iter()
        .filter_map(|&c| SdpBackend::from_code(c))
        .collect())
}

/// The compute capability of CUDA device `index` as major·10 + minor (90 for Hopper), or
/// None when no CUDA runtime is loaded.
pub fn cuda_capability(index: usize) -> Option<u32> {
    // SAFETY: no pointers; the shim checks that the runtime is there.
    let c = unsafe { mtkit_cuda_capability(index as c_int) };
    (c >= 0).then_some(c as u32)
}
