# Type stub of the compiled core (csrc/bindings.cpp). Pointers are ints.
has_cuda: bool

def cpu_isa() -> str: ...
def use_openmp_runtime(path: str) -> bool: ...
def parallel_backend() -> str: ...
def bernoulli_nll_rows(
    logits: int, logits_dtype: int, logits_row_stride: int, target: int, target_dtype: int,
    target_row_stride: int, batch: int, n: int, grad: int, grad_scale: float, recon: int, out_f64: bool,
    n_threads: int,
) -> dict[str, bool]: ...
def gaussian_kl_rows(
    mu: int, mu_dtype: int, mu_s0: int, mu_s1: int, logvar: int, logvar_dtype: int, lv_s0: int, lv_s1: int,
    batch: int, z: int, kl: int, dlogvar: int, out_f64: bool,
) -> dict[str, bool]: ...
def scale_rows(
    g: int, out: int, dtype: int, batch: int, n: int, scale: int, scale_dtype: int, scale_stride: int,
    prescale: float, n_threads: int,
) -> None: ...
def categorical256_forward(
    logits: int, logits_dtype: int, logits_bs: int, target: int, target_dtype: int, target_bs: int, batch: int,
    pixels: int, lse: int, recon: int, out_f64: bool, n_threads: int,
) -> dict[str, bool]: ...
def categorical256_backward(
    logits: int, logits_dtype: int, logits_bs: int, target: int, target_dtype: int, target_bs: int, batch: int,
    pixels: int, lse: int, scale: int, scale_dtype: int, scale_stride: int, grad: int, n_threads: int,
) -> None: ...
def logistic_mixture_rows(
    params: int, params_dtype: int, params_bs: int, target: int, target_dtype: int, target_bs: int, batch: int,
    channels: int, pixels: int, n_mix: int, grad: int, grad_scale: float, recon: int, out_f64: bool, n_threads: int,
) -> dict[str, bool]: ...
def discretized_gaussian_rows(
    params: int, params_dtype: int, params_bs: int, target: int, target_dtype: int, target_bs: int, batch: int,
    channels: int, pixels: int, n_mix: int, grad: int, grad_scale: float, recon: int, out_f64: bool, n_threads: int,
) -> dict[str, bool]: ...
def continuous_bernoulli_rows(
    logits: int, logits_dtype: int, logits_row_stride: int, target: int, target_dtype: int,
    target_row_stride: int, batch: int, n: int, grad: int, grad_scale: float, recon: int, out_f64: bool,
    n_threads: int,
) -> dict[str, bool]: ...

# Present only in a build with CUDA kernels (has_cuda is True); launches are asynchronous.
def cuda_bernoulli_chunks_per_row(n: int) -> int: ...
def cuda_bernoulli_nll_rows(
    logits: int, logits_dtype: int, logits_row_stride: int, target: int, target_dtype: int,
    target_row_stride: int, batch: int, n: int, grad: int, grad_scale: float, recon: int, out_f64: bool,
    partial: int, flags: int, check_finite: bool, stream: int,
) -> None: ...
def cuda_gaussian_kl_rows(
    mu: int, mu_dtype: int, mu_s0: int, mu_s1: int, logvar: int, logvar_dtype: int, lv_s0: int, lv_s1: int,
    batch: int, z: int, kl: int, dlogvar: int, out_f64: bool, flags: int, check_finite: bool, stream: int,
) -> None: ...
def cuda_scale_rows(
    g: int, out: int, dtype: int, batch: int, n: int, scale: int, scale_dtype: int, scale_stride: int,
    prescale: float, stream: int,
) -> None: ...
# Colour likelihoods on CUDA: the CPU signatures with (partial, flags, check_finite, stream)
# in place of n_threads; each forward needs batch * *_chunks_per_row(...) float64 of scratch.
def cuda_categorical256_chunks_per_row(pixels: int) -> int: ...
def cuda_categorical256_forward(
    logits: int, logits_dtype: int, logits_bs: int, target: int, target_dtype: int, target_bs: int, batch: int,
    pixels: int, lse: int, recon: int, out_f64: bool, partial: int, flags: int, check_finite: bool, stream: int,
) -> None: ...
def cuda_categorical256_backward(
    logits: int, logits_dtype: int, logits_bs: int, target: int, target_dtype: int, target_bs: int, batch: int,
    pixels: int, lse: int, scale: int, scale_dtype: int, scale_stride: int, grad: int, stream: int,
) -> None: ...
def cuda_logistic_mixture_chunks_per_row(channels: int, pixels: int) -> int: ...
def cuda_logistic_mixture_rows(
    params: int, params_dtype: int, params_bs: int, target: int, target_dtype: int, target_bs: int, batch: int,
    channels: int, pixels: int, n_mix: int, grad: int, grad_scale: float, recon: int, out_f64: bool, partial: int,
    flags: int, check_finite: bool, stream: int,
) -> None: ...
def cuda_discretized_gaussian_chunks_per_row(channels: int, pixels: int) -> int: ...
def cuda_discretized_gaussian_rows(
    params: int, params_dtype: int, params_bs: int, target: int, target_dtype: int, target_bs: int, batch: int,
    channels: int, pixels: int, n_mix: int, grad: int, grad_scale: float, recon: int, out_f64: bool, partial: int,
    flags: int, check_finite: bool, stream: int,
) -> None: ...
def cuda_continuous_bernoulli_chunks_per_row(n: int) -> int: ...
def cuda_continuous_bernoulli_rows(
    logits: int, logits_dtype: int, logits_row_stride: int, target: int, target_dtype: int,
    target_row_stride: int, batch: int, n: int, grad: int, grad_scale: float, recon: int, out_f64: bool,
    partial: int, flags: int, check_finite: bool, stream: int,
) -> None: ...
