"""Triton convolution kernels for the few-channel, stride-1 convolutions of the seed model (trainer.conv_kernels).

Why hand-written: at batch 128 on an H100 the seed model's whole training step is one CUDA graph
replay of ~0.7 ms, and cuDNN's kernels for its 1-10-channel convolutions alone take 0.33 ms of it
(dgrad 31 us, wgrad 37 us each, plus bias-gradient reductions of 17 us and NCHW<->NHWC transforms):
they are built for wide channels and waste most of each launch here. These kernels compute each
convolution as an implicit GEMM - output pixels x (in-channel, tap) - with the whole (padded)
channel dimension in one tile, so every convolution, data gradient and weight gradient (with its
bias gradient) is a single launch and no layout transform.

Three identities keep it to two kernels:
- a transposed convolution (stride 1, no padding) is a convolution of the input padded by K-1 with
  the kernel flipped and its two channel axes swapped;
- the data gradient of a convolution is that same transposed convolution of the output gradient, and
  the data gradient of a transposed convolution is a plain convolution of the output gradient;
- both weight gradients are correlations of one activation with the other over (batch, rows, cols).
Flips and swaps are strides and a flag, never copies.

Only what the seed model needs is covered (stride 1, no padding, dilation 1, one group, zero
padding mode); `use_triton_convolutions` leaves every other convolution to cuDNN.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import nn

CONVOLVE_TILES = {"block_rows": 128,  # output pixels per program (rows of the implicit GEMM)
                  "block_taps": 32,  # (in-channel, tap) pairs per step of the reduction
                  "num_warps": 4}
CORRELATE_TILES = {"block_rows": 128, "block_taps": 32, "num_warps": 4,
                   "rows_per_program": 512}  # pixels one weight-gradient program sums before its atomic add
# The tiles measured fastest for the seed model's launches at batch 128 on an H100, by tile_key
# (session 7: `outputs/reference/h100/tune_kernels.py`, outputs/reference/h100/session7/run2-tune.txt
# for the convolutions, run3-tune.txt for the weight gradients); launches not listed were fastest on
# the defaults.
_SHORT_SUMS = {"block_rows": 64, "block_taps": 32, "num_warps": 4, "rows_per_program": 256}
_BIAS_SUMS = {"block_rows": 128, "block_taps": 32, "num_warps": 4, "rows_per_program": 256}
TUNED_TILES: dict[str, dict[str, int]] = {
    "convolve C4 O8 K5 P0": {"block_rows": 128, "block_taps": 16, "num_warps": 4},  # conv2
    "convolve C10 O10 K5 P4": {"block_rows": 64, "block_taps": 16, "num_warps": 2},  # deconv1
    "correlate C1 O4 K5 P0": _SHORT_SUMS,  # conv1's weight gradient: 24.2 us (35.1 on the defaults)
    "correlate C4 O8 K5 P0": _SHORT_SUMS,  # conv2's: 49.0 us (63.6)
    "correlate C10 O10 K5 P0": {"block_rows": 128, "block_taps": 64, "num_warps": 4,
                                "rows_per_program": 1024},  # deconv1's: 43.5 us (66.0; 52.5 on _SHORT_SUMS)
    "correlate C1 O10 K5 P0": _SHORT_SUMS,  # deconv2's: 14.9 us (19.4)
    "correlate C0 O10 K5 P0": _BIAS_SUMS,  # deconv1's bias gradient: 6.3 us (8.5)
    "correlate C0 O1 K5 P0": _BIAS_SUMS,  # deconv2's: 6.1 us (8.0)
}


def tile_key(kind: str, in_channels: int, out_channels: int, kernel: int, pad: int = 0) -> str:
    """Names one launch shape: kind "convolve" or "correlate" (in_channels 0: the bias-only sum)."""
    return f"{kind} C{in_channels} O{out_channels} K{kernel} P{pad}"


def _tiles(kind: str, in_channels: int, out_channels: int, kernel: int, pad: int, given: dict | None) -> dict:
    if given is not None:
        return given
    default = CONVOLVE_TILES if kind == "convolve" else CORRELATE_TILES
    return TUNED_TILES.get(tile_key(kind, in_channels, out_channels, kernel, pad), default)


@triton.jit
def _convolution_kernel(
    x_ptr, w_ptr, b_ptr, y_ptr,
    n_rows, H, W, HO, WO,
    sw_out, sw_in, sw_row, sw_col,
    C: tl.constexpr, O: tl.constexpr, K: tl.constexpr, PAD: tl.constexpr, FLIP: tl.constexpr,
    HAS_BIAS: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_O: tl.constexpr,
):
    """y[n, o, i, j] = sum over (c, u, v) of x[n, c, i+u-PAD, j+v-PAD] * w[o, c, u, v] (+ b[o]).

    x, y: contiguous NCHW; w is read through its strides (sw_*) and flipped in (u, v) when FLIP.
    """
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)  # (n, i, j) of the output
    row_ok = rows < n_rows
    n = rows // (HO * WO)
    i = (rows % (HO * WO)) // WO
    j = rows % WO
    outs = tl.arange(0, BLOCK_O)
    acc = tl.zeros((BLOCK_M, BLOCK_O), dtype=tl.float32)
    for start in tl.static_range(0, C * K * K, BLOCK_K):
        taps = start + tl.arange(0, BLOCK_K)  # (c, u, v) flattened
        tap_ok = taps < C * K * K
        c = taps // (K * K)
        u = (taps % (K * K)) // K
        v = taps % K
        hi = i[:, None] + u[None, :] - PAD
        wi = j[:, None] + v[None, :] - PAD
        ok = row_ok[:, None] & tap_ok[None, :] & (hi >= 0) & (hi < H) & (wi >= 0) & (wi < W)
        patch = tl.load(x_ptr + ((n[:, None] * C + c[None, :]) * H + hi) * W + wi, mask=ok, other=0.0)
        if FLIP:
            u = K - 1 - u
            v = K - 1 - v
        w_off = outs[None, :] * sw_out + c[:, None] * sw_in + u[:, None] * sw_row + v[:, None] * sw_col
        weight = tl.load(w_ptr + w_off, mask=tap_ok[:, None] & (outs < O)[None, :], other=0.0)
        acc += tl.dot(patch, weight, input_precision=PRECISION)
    if HAS_BIAS:
        acc += tl.load(b_ptr + outs, mask=outs < O, other=0.0)[None, :]
    y_off = ((n[:, None] * O + outs[None, :]) * HO + i[:, None]) * WO + j[:, None]
    tl.store(y_ptr + y_off, acc, mask=row_ok[:, None] & (outs < O)[None, :])


@triton.jit
def _correlation_kernel(
    g_ptr, x_ptr, out_ptr,
    n_rows, rows_per_program, H, W, HO, WO,
    A: tl.constexpr, C: tl.constexpr, K: tl.constexpr,
    HAS_WEIGHT: tl.constexpr, HAS_BIAS: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_A: tl.constexpr,
    UNROLL: tl.constexpr, PARTIALS: tl.constexpr,
):
    """dw[a, c, u, v] += sum over (n, i, j) of g[n, a, i, j] * x[n, c, i+u, j+v]; db[a] += sum of g[n, a, i, j].

    g: contiguous (N, A, HO, WO); x: contiguous (N, C, H, W). Program (p, t) sums rows
    [p * rows_per_program, ...) for taps tile t; out holds dw (A*C*K*K, with the weight) then db (A, with the
    bias) per row: the program adds its share atomically to row 0 (zeroed), or, with PARTIALS, stores it in
    its own row p (the caller sums the rows). UNROLL: how many row blocks the compiler unrolls (None: none).
    """
    first = tl.program_id(0) * rows_per_program
    taps = tl.program_id(1) * BLOCK_K + tl.arange(0, BLOCK_K)
    tap_ok = taps < C * K * K
    c = taps // (K * K)
    u = (taps % (K * K)) // K
    v = taps % K
    outs = tl.arange(0, BLOCK_A)
    acc = tl.zeros((BLOCK_A, BLOCK_K), dtype=tl.float32)
    bias_acc = tl.zeros((BLOCK_A,), dtype=tl.float32)
    for start in tl.range(first, first + rows_per_program, BLOCK_M, loop_unroll_factor=UNROLL):
        rows = start + tl.arange(0, BLOCK_M)
        row_ok = rows < n_rows
        n = rows // (HO * WO)
        i = (rows % (HO * WO)) // WO
        j = rows % WO
        g_off = ((n[None, :] * A + outs[:, None]) * HO + i[None, :]) * WO + j[None, :]
        grad = tl.load(g_ptr + g_off, mask=(outs < A)[:, None] & row_ok[None, :], other=0.0)
        if HAS_WEIGHT:
            x_off = ((n[:, None] * C + c[None, :]) * H + i[:, None] + u[None, :]) * W + j[:, None] + v[None, :]
            patch = tl.load(x_ptr + x_off, mask=row_ok[:, None] & tap_ok[None, :], other=0.0)
            acc += tl.dot(grad, patch, input_precision=PRECISION)
        if HAS_BIAS:
            bias_acc += tl.sum(grad, axis=1)
    weight_size = A * C * K * K if HAS_WEIGHT else 0
    if PARTIALS:  # this program's own row: plain stores, no zeroing, no contention
        out_ptr += tl.program_id(0) * (weight_size + (A if HAS_BIAS else 0))
    if HAS_WEIGHT:
        dw_off = outs[:, None] * (C * K * K) + taps[None, :]
        dw_ok = (outs < A)[:, None] & tap_ok[None, :]
        if PARTIALS:
            tl.store(out_ptr + dw_off, acc, mask=dw_ok)
        else:  # relaxed: nothing reads dw before the kernel ends, and the default acq_rel fences every add
            tl.atomic_add(out_ptr + dw_off, acc, mask=dw_ok, sem="relaxed")
    if HAS_BIAS:
        if tl.program_id(1) == 0:
            if PARTIALS:
                tl.store(out_ptr + weight_size + outs, bias_acc, mask=outs < A)
            else:
                tl.atomic_add(out_ptr + weight_size + outs, bias_acc, mask=outs < A, sem="relaxed")


def _precision() -> str:
    # the same switch that lets cuDNN use TF32 for torch's own convolutions (on by default)
    return "tf32" if torch.backends.cudnn.allow_tf32 else "ieee"


def _width(channels: int) -> int:
    return max(16, triton.next_power_of_2(channels))  # tl.dot needs every dimension >= 16


def convolve(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, out_channels: int,
             strides: tuple[int, int, int, int], pad: int, flip: bool, tiles: dict | None = None) -> torch.Tensor:
    """Stride-1 convolution of contiguous NCHW `x`; `weight` is read as [out, in, row, col] through `strides`.

    tiles: block_rows, block_taps, num_warps; None = the tuned ones for this shape, else CONVOLVE_TILES.
    """
    n, c, h, w = x.shape
    k = weight.shape[-1]
    t = _tiles("convolve", c, out_channels, k, pad, tiles)
    ho, wo = h + 2 * pad - k + 1, w + 2 * pad - k + 1
    y = torch.empty((n, out_channels, ho, wo), device=x.device, dtype=torch.float32)
    n_rows = n * ho * wo
    _convolution_kernel[(triton.cdiv(n_rows, t["block_rows"]),)](
        x, weight, bias if bias is not None else weight, y,
        n_rows, h, w, ho, wo, *strides,
        C=c, O=out_channels, K=k, PAD=pad, FLIP=flip, HAS_BIAS=bias is not None, PRECISION=_precision(),
        BLOCK_M=t["block_rows"], BLOCK_K=t["block_taps"], BLOCK_O=_width(out_channels), num_warps=t["num_warps"],
    )
    return y


def correlate(grad: torch.Tensor, x: torch.Tensor | None, kernel: int, with_bias: bool, tiles: dict | None = None
              ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(dw, db): dw[a, c, u, v] = sum of grad[n, a, i, j] * x[n, c, i+u, j+v]; db[a] = sum of grad[n, a, i, j].

    `x` None: db only. Both contiguous NCHW, x `kernel - 1` larger than grad in rows and columns.
    tiles: block_rows, block_taps, num_warps, rows_per_program and optionally num_stages (how many row blocks
    Triton's pipeliner loads ahead; its default 3 is what was measured), unroll (how many row blocks the
    compiler unrolls) and partials (true: each program stores its sums and one torch.sum adds them up, instead
    of atomic adds into zeroed outputs); None = tuned for this shape, else CORRELATE_TILES.
    """
    n, a, ho, wo = grad.shape
    c, h, w = (x.shape[1], x.shape[2], x.shape[3]) if x is not None else (1, ho, wo)
    t = _tiles("correlate", c if x is not None else 0, a, kernel, 0, tiles)
    n_rows = n * ho * wo
    programs = triton.cdiv(n_rows, t["rows_per_program"])
    weight_size = a * c * kernel * kernel if x is not None else 0
    partials = t.get("partials", False)
    width = weight_size + (a if with_bias else 0)  # dw then db: one buffer, one zeroing launch at most
    out = (torch.empty((programs, width), device=grad.device, dtype=torch.float32) if partials
           else torch.zeros(width, device=grad.device, dtype=torch.float32))
    tap_tiles = triton.cdiv(c * kernel * kernel, t["block_taps"]) if x is not None else 1
    _correlation_kernel[(programs, tap_tiles)](
        grad, x if x is not None else grad, out,
        n_rows, t["rows_per_program"], h, w, ho, wo,
        A=a, C=c, K=kernel, HAS_WEIGHT=x is not None, HAS_BIAS=with_bias, PRECISION=_precision(),
        BLOCK_M=t["block_rows"], BLOCK_K=t["block_taps"], BLOCK_A=_width(a), UNROLL=t.get("unroll"),
        PARTIALS=partials, num_warps=t["num_warps"], num_stages=t.get("num_stages", 3),
    )
    total = out.sum(dim=0) if partials else out
    dw = total[:weight_size].view(a, c, kernel, kernel) if x is not None else None
    return dw, total[weight_size:] if with_bias else None


def conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, tiles: dict | None = None
           ) -> torch.Tensor:
    """Stride-1 unpadded convolution; weight [out, in, K, K] as stored."""
    return convolve(x, weight, bias, weight.shape[0], weight.stride(), pad=0, flip=False, tiles=tiles)


def conv_transpose2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                     tiles: dict | None = None) -> torch.Tensor:
    """Stride-1 unpadded transposed convolution, weight [in, out, K, K] as stored: a convolution of x padded
    by K-1 with the kernel flipped and its channel axes swapped (read through swapped strides)."""
    s = weight.stride()
    return convolve(x, weight, bias, weight.shape[1], (s[1], s[0], s[2], s[3]), pad=weight.shape[-1] - 1,
                    flip=True, tiles=tiles)


class _Convolution(torch.autograd.Function):
    """Stride-1, unpadded Conv2d (transposed=False) or ConvTranspose2d (transposed=True) on these kernels.

    weight: [out, in, K, K] for a convolution, [in, out, K, K] for a transposed one (torch's layouts).
    """

    @staticmethod
    def forward(ctx, x, weight, bias, transposed: bool):
        x, weight = x.contiguous(), weight.contiguous()
        ctx.save_for_backward(x, weight)
        ctx.transposed, ctx.has_bias = transposed, bias is not None
        return (conv_transpose2d if transposed else conv2d)(x, weight, bias)

    @staticmethod
    def backward(ctx, grad_y):
        x, weight = ctx.saved_tensors
        grad_y = grad_y.contiguous()
        k = weight.shape[-1]
        grad_x = grad_w = grad_b = None
        want_w, want_b = ctx.needs_input_grad[1], ctx.has_bias and ctx.needs_input_grad[2]
        if ctx.needs_input_grad[0]:  # each one's data gradient is the other applied to the output gradient
            grad_x = (conv2d if ctx.transposed else conv_transpose2d)(grad_y, weight)
        if ctx.transposed:  # dw[c, o, u, v] = sum x[n, c, i, j] * grad_y[n, o, i+u, j+v]
            grad_w, _ = correlate(x, grad_y, k, with_bias=False) if want_w else (None, None)
            _, grad_b = correlate(grad_y, None, k, with_bias=True) if want_b else (None, None)
        elif want_w or want_b:  # dw[o, c, u, v] = sum grad_y[n, o, i, j] * x[n, c, i+u, j+v]
            grad_w, grad_b = correlate(grad_y, x, k, with_bias=want_b)
        return grad_x, grad_w, grad_b, None


def supported(module: nn.Module) -> bool:
    """Whether `module` is a convolution these kernels compute: stride 1, no padding, one group, float32."""
    if not isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        return False
    plain = (module.stride == (1, 1) and module.padding == (0, 0) and module.dilation == (1, 1)
             and module.groups == 1 and module.padding_mode == "zeros" and module.kernel_size[0] == module.kernel_size[1])
    if isinstance(module, nn.ConvTranspose2d):
        plain = plain and module.output_padding == (0, 0)
    return plain and module.weight.dtype == torch.float32


@torch.compiler.disable  # torch.compile leaves these launches alone (a graph break) and compiles around them
def convolution(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, transposed: bool) -> torch.Tensor:
    # float32 in and out: under bf16 autocast the neighbouring layers cast back as they need
    return _Convolution.apply(x.float(), weight, bias, transposed)


class TritonConv2d(nn.Conv2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return convolution(x, self.weight, self.bias, transposed=False)


class TritonConvTranspose2d(nn.ConvTranspose2d):
    def forward(self, x: torch.Tensor, output_size=None) -> torch.Tensor:
        return convolution(x, self.weight, self.bias, transposed=True)


def use_triton_convolutions(model: nn.Module) -> int:
    """Run every supported convolution of `model` on these kernels (same parameters, same state_dict).

    Returns how many convolutions were switched; the others stay on cuDNN.
    """
    switched = 0
    for module in model.modules():
        if supported(module):
            module.__class__ = TritonConvTranspose2d if isinstance(module, nn.ConvTranspose2d) else TritonConv2d
            switched += 1
    return switched
