"""Autoencoders: the blog's network layer for layer, and the conv / mlp generalisations' shapes and knobs."""

import pytest
import torch
from torch import nn

from aesweep.model import (
    BlogAutoencoder,
    ConvAutoencoder,
    Heads,
    MLPAutoencoder,
    count_parameters,
)

ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "elu": nn.ELU, "gelu": nn.GELU, "silu": nn.SiLU,
               "tanh": nn.Tanh}
BATCH = 4


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(BATCH, 1, 28, 28, generator=torch.Generator().manual_seed(0))


def layer_outputs(sequential: nn.Sequential, x: torch.Tensor) -> list[tuple[type, tuple[int, ...]]]:
    """(layer type, output shape without the batch dimension) for every layer, in order."""
    shapes = []
    for layer in sequential:
        x = layer(x)
        shapes.append((type(layer), tuple(x.shape[1:])))
    return shapes


def describe(layer: nn.Module) -> tuple:
    """A layer as the blog writes it: Conv(1,4,5), Linear(3200,10), Unflatten(10,20,20), ..."""
    if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
        return (type(layer).__name__, layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride,
                layer.padding)
    if isinstance(layer, Heads):  # one head: the blog's Linear(3200, 10)
        return describe(layer.linear)
    if isinstance(layer, nn.Linear):
        return ("Linear", layer.in_features, layer.out_features)
    if isinstance(layer, nn.Unflatten):
        return ("Unflatten", layer.dim, tuple(layer.unflattened_size))
    return (type(layer).__name__,)


# ---------------------------------------------------------------- the blog's network


def test_blog_encoder_is_the_blogs_layer_list():
    assert [describe(layer) for layer in BlogAutoencoder().encoder] == [
        ("Conv2d", 1, 4, (5, 5), (1, 1), (0, 0)),
        ("ReLU",),
        ("Conv2d", 4, 8, (5, 5), (1, 1), (0, 0)),
        ("ReLU",),
        ("Flatten",),
        ("Linear", 3200, 10),
        ("BottleneckActivation",),
    ]


def test_blog_decoder_is_the_blogs_layer_list():
    assert [describe(layer) for layer in BlogAutoencoder().decoder] == [
        ("Linear", 10, 400),
        ("ReLU",),
        ("Linear", 400, 4000),
        ("ReLU",),
        ("Unflatten", 1, (10, 20, 20)),
        ("ConvTranspose2d", 10, 10, (5, 5), (1, 1), (0, 0)),
        ("ConvTranspose2d", 10, 1, (5, 5), (1, 1), (0, 0)),
        ("Sigmoid",),
    ]


def test_blog_layer_output_shapes(images):
    model = BlogAutoencoder()
    assert layer_outputs(model.encoder, images) == [
        (nn.Conv2d, (4, 24, 24)),
        (nn.ReLU, (4, 24, 24)),
        (nn.Conv2d, (8, 20, 20)),
        (nn.ReLU, (8, 20, 20)),
        (nn.Flatten, (3200,)),
        (Heads, (10,)),  # one LogitsLinear head: an nn.Linear that stays float32 under autocast
        (type(model.encoder[-1]), (10,)),
    ]
    assert layer_outputs(model.decoder, model.encoder(images)) == [
        (nn.Linear, (400,)),
        (nn.ReLU, (400,)),
        (nn.Linear, (4000,)),
        (nn.ReLU, (4000,)),
        (nn.Unflatten, (10, 20, 20)),
        (nn.ConvTranspose2d, (10, 24, 24)),
        (nn.ConvTranspose2d, (1, 28, 28)),
        (nn.Sigmoid, (1, 28, 28)),
    ]


def test_blog_has_the_blogs_exact_parameter_count():
    # conv 104 + conv 808 + linear 32,010 | linear 4,400 + linear 1,604,000 + convT 2,510 + convT 251
    assert count_parameters(BlogAutoencoder()) == 1_644_083


def test_blog_bottleneck_width_changes_only_the_two_layers_around_it():
    # Linear(3200,w) and Linear(w,400): (3200+1)*w + (w*400+400); width 10 gives the blog's count
    assert count_parameters(BlogAutoencoder(bottleneck=16)) == 1_644_083 + 6 * (3200 + 1) + 6 * 400


def test_blog_encoder_alone_gives_a_softmax_code_per_image(images):
    code = BlogAutoencoder().encoder(images)
    assert code.shape == (BATCH, 10)
    assert torch.allclose(code.sum(dim=1), torch.ones(BATCH), atol=1e-6)
    assert (code >= 0).all()


def test_blog_forward_is_decoder_of_encoder(images):
    model = BlogAutoencoder()
    assert torch.equal(model(images), model.decoder(model.encoder(images)))


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_blog_hidden_activation_is_configurable(activation):
    hidden = [type(layer) for layer in BlogAutoencoder(activation=activation).encoder[1:4:2]]
    assert hidden == [ACTIVATIONS[activation]] * 2


# ---------------------------------------------------------------- conv and mlp generalisations


CONV_SHAPES = [
    # channels, kernels, strides
    ([16, 32, 64], 3, [2, 2, 1]),  # conf/model/conv.yaml
    ([8], 3, 1),
    ([8, 16], 4, 2),  # even kernel, stride 2: 28 -> 15 -> 8
    ([8, 16], [2, 4], [1, 1]),  # even kernels, stride 1: 28 -> 29 -> 30
    ([4, 8, 16], [5, 3, 1], [2, 2, 2]),
    ([4, 4], [6, 3], [3, 1]),
    ([4, 4, 4, 4], 3, 2),  # 28 -> 14 -> 7 -> 4 -> 2
]


@pytest.mark.parametrize("channels, kernels, strides", CONV_SHAPES)
def test_conv_reconstructs_a_28px_image_in_unit_range(images, channels, kernels, strides):
    model = ConvAutoencoder(channels=channels, kernels=kernels, strides=strides)
    recon = model(images)
    assert recon.shape == (BATCH, 1, 28, 28)
    assert recon.min() >= 0 and recon.max() <= 1


@pytest.mark.parametrize("channels, kernels, strides", CONV_SHAPES)
def test_conv_encoder_alone_gives_the_bottleneck_code(images, channels, kernels, strides):
    code = ConvAutoencoder(channels=channels, kernels=kernels, strides=strides, bottleneck=7).encoder(images)
    assert code.shape == (BATCH, 7)
    assert torch.allclose(code.sum(dim=1), torch.ones(BATCH), atol=1e-6)


@pytest.mark.parametrize("hidden", [[512, 256], [64], [128, 64, 32]])
def test_mlp_reconstructs_a_28px_image_in_unit_range(images, hidden):
    model = MLPAutoencoder(hidden=hidden, bottleneck=12)
    assert model.encoder(images).shape == (BATCH, 12)
    recon = model(images)
    assert recon.shape == (BATCH, 1, 28, 28)
    assert recon.min() >= 0 and recon.max() <= 1


@pytest.mark.parametrize("model_class", [ConvAutoencoder, MLPAutoencoder])
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_every_hidden_activation_is_used_and_gives_valid_images(images, model_class, activation):
    model = model_class(activation=activation)
    used = {type(layer) for layer in model.modules()} & set(ACTIVATIONS.values())
    assert used == {ACTIVATIONS[activation]}
    recon = model(images)
    assert recon.shape == (BATCH, 1, 28, 28) and recon.min() >= 0 and recon.max() <= 1


@pytest.mark.parametrize("model_class", [ConvAutoencoder, MLPAutoencoder])
@pytest.mark.parametrize("batch_norm", [True, False])
def test_batch_norm_switch_adds_or_removes_norm_layers(images, model_class, batch_norm):
    model = model_class(batch_norm=batch_norm)
    has_norm = any(isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)) for layer in model.modules())
    assert has_norm is batch_norm
    assert model(images).shape == (BATCH, 1, 28, 28)


@pytest.mark.parametrize("model_class", [ConvAutoencoder, MLPAutoencoder])
def test_dropout_adds_dropout_layers(model_class):
    assert not any("Dropout" in type(m).__name__ for m in model_class(dropout=0.0).modules())
    assert any("Dropout" in type(m).__name__ for m in model_class(dropout=0.2).modules())


def test_conv_kernels_and_strides_are_per_layer_lists():
    convs = [m for m in ConvAutoencoder(channels=[4, 8], kernels=[5, 3], strides=[2, 1]).encoder
             if isinstance(m, nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.stride) for c in convs] == [(4, (5, 5), (2, 2)), (8, (3, 3), (1, 1))]


# ---------------------------------------------------------------- the bottleneck activation

MODELS = [BlogAutoencoder, ConvAutoencoder, MLPAutoencoder]


@pytest.mark.parametrize("model_class", MODELS)
@pytest.mark.parametrize("temperature", [0.5, 1.0, 3.0])
def test_softmax_bottleneck_is_softmax_of_logits_over_temperature(images, model_class, temperature):
    model = model_class(bottleneck_activation="softmax", temperature=temperature).eval()
    logits = model.encoder[:-1](images)
    assert torch.allclose(model.encoder(images), torch.softmax(logits / temperature, dim=1), atol=1e-6)


@pytest.mark.parametrize("model_class", MODELS)
def test_sigmoid_bottleneck_is_sigmoid_of_logits_over_temperature(images, model_class):
    model = model_class(bottleneck_activation="sigmoid", temperature=2.0).eval()
    code = model.encoder(images)
    assert torch.allclose(code, torch.sigmoid(model.encoder[:-1](images) / 2.0), atol=1e-6)
    assert model(images).shape == (BATCH, 1, 28, 28)


@pytest.mark.parametrize("model_class", MODELS)
def test_no_bottleneck_activation_passes_logits_through(images, model_class):
    model = model_class(bottleneck_activation="none").eval()
    assert torch.equal(model.encoder(images), model.encoder[:-1](images))
    assert model(images).shape == (BATCH, 1, 28, 28)


def test_higher_temperature_flattens_the_code_but_keeps_each_images_winner(images):
    def code_at(temperature):
        torch.manual_seed(0)  # same weights at every temperature
        return BlogAutoencoder(temperature=temperature).encoder(images)

    sharp, flat = code_at(0.1), code_at(10.0)
    assert torch.equal(sharp.argmax(dim=1), flat.argmax(dim=1))
    assert (sharp.max(dim=1).values > flat.max(dim=1).values).all()


@pytest.mark.parametrize("model_class", MODELS)
def test_under_bf16_autocast_the_logits_stay_float32_and_the_rest_is_bf16(images, model_class):
    model = model_class()
    float32_logits = model.parts(images).logits
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, code, recon, _ = model.parts(images)

    assert (logits.dtype, code.dtype, recon.dtype) == (torch.float32, torch.float32, torch.bfloat16)
    # only the layers before the logits ran in bf16: the logits agree with float32 to bf16's ~3 digits
    torch.testing.assert_close(logits, float32_logits, rtol=0.05, atol=0.02)
    assert not torch.equal(logits, float32_logits)


# ---------------------------------------------------------------- several heads


@pytest.mark.parametrize("model_class", [ConvAutoencoder, MLPAutoencoder])
def test_every_head_is_trained_and_decoded_and_the_selected_one_is_the_encoders_output(images, model_class):
    model = model_class(heads=3).eval()
    logits, code, recon, overcluster = model.parts(images)
    assert overcluster is None  # no over-clustering head unless asked for
    assert logits.shape == code.shape == (BATCH, 3, 10)
    assert recon.shape == (BATCH, 1, 28, 28)
    assert torch.allclose(code.sum(dim=-1), torch.ones(BATCH, 3))  # each head a softmax of its own
    for head in range(3):
        model.heads.selected.fill_(head)
        assert torch.equal(model.encoder(images), code[:, head])
    assert "heads.selected" not in dict(model.named_parameters()) and "encoder.9.selected" not in dict(
        model.named_parameters())
    assert any(name.endswith("selected") for name in model.state_dict())  # saved with the weights


def test_one_head_has_the_blog_models_parameter_count_and_each_more_head_adds_its_linear_and_decoder_input():
    one, three = ConvAutoencoder(heads=1), ConvAutoencoder(heads=3)
    added = count_parameters(three) - count_parameters(one)
    assert added == 2 * (128 * 10 + 10) + 2 * 10 * 128  # two more heads, and the decoder reads 20 more inputs


# ---------------------------------------------------------------- over-clustering head


@pytest.mark.parametrize("model_class", [ConvAutoencoder, MLPAutoencoder])
def test_the_overclustering_head_reads_the_heads_features_and_changes_neither_the_code_nor_the_decoder(
        images, model_class):
    torch.manual_seed(0)
    plain = model_class(heads=2).eval()
    torch.manual_seed(0)
    wide = model_class(heads=2, overcluster=50).eval()
    wide.load_state_dict({**plain.state_dict(), **{f"overcluster.{k}": v for k, v in wide.overcluster.state_dict().items()}})

    parts, wide_parts = plain.parts(images), wide.parts(images)
    assert wide_parts.overcluster.shape == (BATCH, 50)
    for name in ("logits", "code", "recon"):  # the scored heads and the reconstruction do not see it
        assert torch.equal(getattr(parts, name), getattr(wide_parts, name))
    features = wide.encoder[:-2](images)
    assert torch.equal(wide_parts.overcluster, wide.overcluster(features))
    hidden = 128 if model_class is ConvAutoencoder else 256
    assert count_parameters(wide) - count_parameters(plain) == hidden * 50 + 50  # one Linear(features, 50)
