"""aesweep.kernels (trainer.conv_kernels=triton): the Triton convolutions compute what torch's do.

Without a GPU the kernels run in Triton's interpreter (numpy, float32 throughout): conftest.py sets
TRITON_INTERPRET before anything imports Triton.
On a GPU they run compiled; TF32 is switched off there (for them and for cuDNN) so that both sides compute
in float32 and must agree as closely (TF32 training is tests/test_cuda.py's).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from aesweep import kernels
from aesweep.errors import ConfigError
from aesweep.model import ConvAutoencoder, SeedAutoencoder
from aesweep.train import triton_convolutions

from conftest import compose_config

ON_GPU = torch.cuda.is_available()

DEVICE = torch.device("cuda" if ON_GPU else "cpu")
TOLERANCE = 2e-5  # relative to the largest value compared: float32 summed in another order


@pytest.fixture(autouse=True)
def float32_convolutions():
    allowed = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32 = allowed


def assert_close(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    scale = theirs.abs().max().item()
    assert ours.shape == theirs.shape
    assert (ours - theirs).abs().max().item() <= TOLERANCE * scale


def twin(module: nn.Module) -> nn.Module:
    """A copy of `module` with the same parameters, switched to the Triton kernels."""
    copy = type(module)(module.in_channels, module.out_channels, module.kernel_size, bias=module.bias is not None)
    copy.load_state_dict(module.state_dict())
    copy.to(DEVICE)
    assert kernels.use_triton_convolutions(copy) == 1
    return copy


@pytest.mark.parametrize("layer, shape", [
    pytest.param(nn.Conv2d(1, 4, 5), (3, 1, 28, 28), id="seed-conv1"),
    pytest.param(nn.Conv2d(4, 8, 5), (3, 4, 24, 24), id="seed-conv2"),
    pytest.param(nn.ConvTranspose2d(10, 10, 5), (3, 10, 20, 20), id="seed-deconv1"),
    pytest.param(nn.ConvTranspose2d(10, 1, 5), (3, 10, 24, 24), id="seed-deconv2"),
    pytest.param(nn.Conv2d(3, 20, 3, bias=False), (2, 3, 9, 7), id="wide-no-bias-rectangular"),
    pytest.param(nn.ConvTranspose2d(20, 3, 3), (2, 20, 6, 5), id="transposed-wide-in"),
])
def test_triton_convolution_matches_torch_forward_and_every_gradient(layer, shape):
    torch.manual_seed(0)
    layer = layer.to(DEVICE)
    ours = twin(layer)
    x = torch.randn(shape, device=DEVICE, requires_grad=True)
    x_ours = x.detach().clone().requires_grad_()
    y, y_ours = layer(x), ours(x_ours)
    assert_close(y_ours, y)
    grad_y = torch.randn_like(y)
    y.backward(grad_y)
    y_ours.backward(grad_y)
    assert_close(x_ours.grad, x.grad)
    assert_close(ours.weight.grad, layer.weight.grad)
    if layer.bias is not None:
        assert_close(ours.bias.grad, layer.bias.grad)


WEIGHT_GRADIENT_TILES = [  # each way the weight-gradient kernel can sum, as tune_kernels.py tries them
    pytest.param(None, id="tuned-atomic"),
    pytest.param({"block_rows": 32, "block_taps": 32, "num_warps": 4, "rows_per_program": 96, "partials": True},
                 id="partials"),
    pytest.param({"block_rows": 32, "block_taps": 16, "num_warps": 2, "rows_per_program": 128, "unroll": 2},
                 id="unrolled-atomic"),
    pytest.param({"block_rows": 16, "block_taps": 32, "num_warps": 4, "rows_per_program": 64, "num_stages": 1,
                  "unroll": 4, "partials": True}, id="unrolled-partials-unpipelined"),
]


@pytest.mark.parametrize("tiles", WEIGHT_GRADIENT_TILES)
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "no-bias"])
def test_every_weight_gradient_tiling_sums_to_torchs(tiles, with_bias):
    torch.manual_seed(0)
    x = torch.randn(3, 4, 12, 10, device=DEVICE)  # rows 3*8*6 = 144: the last program of 96 or 128 is partial
    grad = torch.randn(3, 8, 8, 6, device=DEVICE)
    dw, db = kernels.correlate(grad, x, 5, with_bias=with_bias, tiles=tiles)
    assert_close(dw, torch.nn.grad.conv2d_weight(x, (8, 4, 5, 5), grad))
    if with_bias:
        assert_close(db, grad.sum(dim=(0, 2, 3)))
    else:
        assert db is None
    _, bias_only = kernels.correlate(grad, None, 5, with_bias=True, tiles=tiles)  # a transposed layer's bias
    assert_close(bias_only, grad.sum(dim=(0, 2, 3)))


def test_input_that_needs_no_gradient_gets_none_and_weights_still_learn():
    torch.manual_seed(0)
    layer = nn.Conv2d(1, 4, 5).to(DEVICE)
    ours = twin(layer)
    images = torch.rand(2, 1, 28, 28, device=DEVICE)  # the data: no gradient wanted
    layer(images).square().sum().backward()
    ours(images).square().sum().backward()
    assert images.grad is None
    assert_close(ours.weight.grad, layer.weight.grad)


def test_the_seed_model_switches_its_four_convolutions_and_trains_the_same():
    torch.manual_seed(0)
    reference = SeedAutoencoder().to(DEVICE)
    model = SeedAutoencoder().to(DEVICE)
    model.load_state_dict(reference.state_dict())
    assert kernels.use_triton_convolutions(model) == 4
    assert model.state_dict().keys() == reference.state_dict().keys()  # weights load and save as before
    x = torch.rand(2, 1, 28, 28, device=DEVICE)
    loss, loss_ours = nn.functional.mse_loss(reference(x), x), nn.functional.mse_loss(model(x), x)
    assert loss_ours.item() == pytest.approx(loss.item(), rel=TOLERANCE)
    loss.backward()
    loss_ours.backward()
    for (name, p), p_ours in zip(reference.named_parameters(), model.parameters()):
        assert_close(p_ours.grad, p.grad), name


def test_strided_and_padded_convolutions_stay_on_cudnn():
    model = ConvAutoencoder(channels=[4, 8], strides=[2, 1], kernels=3)  # padding 1 everywhere
    assert kernels.use_triton_convolutions(model) == 0
    assert not any(isinstance(m, (kernels.TritonConv2d, kernels.TritonConvTranspose2d)) for m in model.modules())


def test_triton_kernels_on_a_cpu_are_refused_and_auto_keeps_cudnn():
    cfg = compose_config("device=cpu", "trainer.conv_kernels=triton")
    with pytest.raises(ConfigError) as raised:
        triton_convolutions(cfg.trainer, torch.device("cpu"))
    assert str(raised.value).startswith("trainer.conv_kernels='triton' is not allowed: auto or cudnn on cpu")
    assert "CUDA GPUs only" in str(raised.value)
    assert triton_convolutions(compose_config("trainer.conv_kernels=auto").trainer, torch.device("cpu")) is False
