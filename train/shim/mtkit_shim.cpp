// The few LibTorch calls tch 0.24 does not generate, for the trainer (train/src/shim.rs wraps
// them): the fused AdamW kernel and the foreach ops (tch's generator leaves out every
// `_foreach*` and `_fused_adam*` function), the autocast dtype (tch only toggles CUDA
// autocast, whose default dtype is fp16), and SDPA's backend order. All of them live in
// libtorch_cpu, so they link in the CPU build and dispatch to CUDA at run time.
//
// A tensor crosses as tch's `C_tensor *`, which is an `at::Tensor *` (torch-sys's torch_api.h).
// No C++ exception may cross into Rust: every entry point catches and returns the message as a
// malloc'ed string (NULL on success), which Rust frees with mtkit_shim_free.

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/autocast_mode.h>
#include <dlfcn.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

char *error_of(const char *what) {
  char *s = static_cast<char *>(std::malloc(std::strlen(what) + 1));
  if (s != nullptr) std::strcpy(s, what);
  return s;
}

#define SHIM_TRY(body)                                    \
  try {                                                   \
    body;                                                 \
    return nullptr;                                       \
  } catch (const std::exception &e) {                     \
    return error_of(e.what());                            \
  } catch (...) {                                         \
    return error_of("unknown C++ exception in mtkit's shim"); \
  }

std::vector<at::Tensor> list_of(at::Tensor **ts, int64_t n) {
  std::vector<at::Tensor> v;
  v.reserve(n);
  for (int64_t i = 0; i < n; i++) v.push_back(*ts[i]);
  return v;
}

at::DeviceType device_type_of(int device) {
  return device == 1 ? at::kCUDA : at::kCPU;
}

}  // namespace

extern "C" {

void mtkit_shim_free(char *s) { std::free(s); }

// Autocast on `device` (0 CPU, 1 CUDA) in `dtype` (an at::ScalarType code), entering one
// nesting level; the previous state comes back in prev_enabled / prev_dtype for the exit.
char *mtkit_autocast_enter(int device, int dtype, bool *prev_enabled, int *prev_dtype) {
  SHIM_TRY({
    auto dt = device_type_of(device);
    *prev_enabled = at::autocast::is_autocast_enabled(dt);
    *prev_dtype = static_cast<int>(at::autocast::get_autocast_dtype(dt));
    at::autocast::set_autocast_dtype(dt, static_cast<at::ScalarType>(dtype));
    at::autocast::set_autocast_enabled(dt, true);
    at::autocast::increment_nesting();
  })
}

// Leaves the level entered by mtkit_autocast_enter: the cast-weight cache is cleared when
// the outermost level ends (as torch.autocast's __exit__ does), the previous state restored.
char *mtkit_autocast_exit(int device, bool prev_enabled, int prev_dtype) {
  SHIM_TRY({
    auto dt = device_type_of(device);
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    at::autocast::set_autocast_enabled(dt, prev_enabled);
    at::autocast::set_autocast_dtype(dt, static_cast<at::ScalarType>(prev_dtype));
  })
}

// The autocast dtype of `device` (an at::ScalarType code), and whether autocast is on there.
char *mtkit_autocast_state(int device, int *dtype, bool *enabled) {
  SHIM_TRY({
    auto dt = device_type_of(device);
    *dtype = static_cast<int>(at::autocast::get_autocast_dtype(dt));
    *enabled = at::autocast::is_autocast_enabled(dt);
  })
}

// torch.optim.AdamW(fused=True)'s update of n parameters: at::_fused_adamw_ with one shared
// step tensor (float32, already incremented by the caller: with 0 the bias correction
// divides by zero) and an optional found_inf (float32 scalar; 1 skips the update).
char *mtkit_fused_adamw(at::Tensor **params, at::Tensor **grads, at::Tensor **exp_avgs,
                        at::Tensor **exp_avg_sqs, int64_t n, at::Tensor *step, double lr,
                        double beta1, double beta2, double weight_decay, double eps,
                        at::Tensor *found_inf) {
  SHIM_TRY({
    if (n == 0) return nullptr;
    std::vector<at::Tensor> steps(n, *step);
    std::optional<at::Tensor> inf;
    if (found_inf != nullptr) inf = *found_inf;
    at::_fused_adamw_(list_of(params, n), list_of(grads, n), list_of(exp_avgs, n),
                      list_of(exp_avg_sqs, n), {}, steps, lr, beta1, beta2, weight_decay, eps,
                      /*amsgrad=*/false, /*maximize=*/false, /*grad_scale=*/std::nullopt, inf);
  })
}

// The global L2 norm of n tensors, as a new float32 scalar on their device (no host read).
char *mtkit_total_norm(at::Tensor **ts, int64_t n, at::Tensor **out) {
  SHIM_TRY({
    auto norms = at::_foreach_norm(list_of(ts, n), 2);
    *out = new at::Tensor(at::linalg_vector_norm(at::stack(norms), 2));
  })
}

// ts[i] *= scale for every i, scale a 0-dim tensor on their device.
char *mtkit_foreach_mul_(at::Tensor **ts, int64_t n, at::Tensor *scale) {
  SHIM_TRY({ at::_foreach_mul_(list_of(ts, n), *scale); })
}

// ts[i].zero_() for every i.
char *mtkit_foreach_zero_(at::Tensor **ts, int64_t n) {
  SHIM_TRY({ at::_foreach_zero_(list_of(ts, n)); })
}

// SDPA's backend priority (at::SDPBackend codes: 0 math, 1 flash, 2 efficient, 3 cudnn, ...)
// set from `order` (n codes), and read back into `out` (room for `cap` codes; *len set).
char *mtkit_set_sdp_priority(const int64_t *order, int64_t n) {
  SHIM_TRY({ at::globalContext().setSDPPriorityOrder(std::vector<int64_t>(order, order + n)); })
}

char *mtkit_sdp_priority(int64_t *out, int64_t cap, int64_t *len) {
  SHIM_TRY({
    auto order = at::globalContext().sDPPriorityOrder();
    *len = 0;
    for (auto b : order) {
      if (*len < cap) out[*len] = static_cast<int64_t>(b);
      (*len)++;
    }
  })
}

// The compute capability of CUDA device `index` through the CUDA runtime that libtorch_cuda
// loaded (found with dlsym, so the CPU build links without it); -1 when it is not loaded.
int mtkit_cuda_capability(int index) {
  using attr_fn = int (*)(int *, int, int);
  auto f = reinterpret_cast<attr_fn>(dlsym(RTLD_DEFAULT, "cudaDeviceGetAttribute"));
  if (f == nullptr) return -1;
  int major = 0, minor = 0;
  // cudaDevAttrComputeCapabilityMajor = 75, cudaDevAttrComputeCapabilityMinor = 76.
  if (f(&major, 75, index) != 0 || f(&minor, 76, index) != 0) return -1;
  return major * 10 + minor;
}

}  // extern "C"
