"""Config validation on configs composed exactly as `python train.py <overrides>` composes them."""

import pytest
from helpers import CONF_DIR, compose_config

from aesweep.config import validate
from aesweep.errors import ConfigError
from aesweep.overrides import check_command_line

ACTIVATIONS_ALLOWED = "one of: relu, leaky_relu, elu, gelu, silu, tanh"


def refusal(*overrides: str) -> ConfigError:
    """How `python train.py <overrides>` refuses them: the command-line check (where the schema types each key
    as Hydra composes), then validate (each key's rule, then the rules across keys)."""
    with pytest.raises(ConfigError) as raised:
        check_command_line(list(overrides), CONF_DIR)
        validate(compose_config(*overrides))
    return raised.value


def test_default_config_composes_and_validates():
    validate(compose_config())


def test_default_config_is_the_blog_recipe():
    cfg = compose_config()
    assert cfg.model._target_ == "aesweep.model.BlogAutoencoder"
    assert (cfg.model.bottleneck, cfg.model.bottleneck_activation, cfg.model.activation) == (10, "softmax", "relu")
    assert (cfg.optimizer._target_, cfg.optimizer.lr, cfg.optimizer.momentum) == ("torch.optim.SGD", 0.01, 0.5)
    assert (cfg.loss.recon, cfg.eval.readout, cfg.eval.n_clusters) == ("mse", "argmax", 10)
    assert (cfg.data.val_size, cfg.data.subset) == (5000, None)


@pytest.mark.parametrize(
    "override",
    [
        "model=conv", "model=mlp", "optimizer=adam", "optimizer=adamw", "optimizer=rmsprop", "scheduler=cosine",
        "loss=bce", "augment=affine", "device=cpu", "device=cuda", "device=mps",
    ],
)
def test_every_group_option_composes_and_validates(override):
    validate(compose_config(override))  # device=cuda is refused later, by the device check, not here


@pytest.mark.parametrize(
    "overrides",
    [
        ["model.bottleneck=16", "eval.readout=kmeans"],
        ["model.bottleneck=16", "eval.allow_overclustering=true"],
        ["model=conv", "model.bottleneck=32", "eval.readout=kmeans", "model.activation=gelu", "optimizer=adam",
         "optimizer.lr=3e-4"],  # the example override line
    ],
)
def test_bottleneck_wider_than_n_clusters_is_accepted_with_kmeans_or_overclustering(overrides):
    validate(compose_config(*overrides))


BAD = [
    # overrides, key, bad value, text of what is allowed
    (["model.activation=swish"], "model.activation", "swish", ACTIVATIONS_ALLOWED),
    (["model=conv", "model.activation=swish"], "model.activation", "swish", ACTIVATIONS_ALLOWED),
    (["eval.readout=mode"], "eval.readout", "mode", "one of: argmax, kmeans"),
    (["model.bottleneck=0"], "model.bottleneck", 0, "an integer >= 1"),
    (["model.bottleneck=-3"], "model.bottleneck", -3, "an integer >= 1"),
    (["optimizer.lr=0"], "optimizer.lr", 0, "a number > 0"),
    (["optimizer.lr=-1"], "optimizer.lr", -1, "a number > 0"),
    (["optimizer=adam", "optimizer.lr=-0.001"], "optimizer.lr", -0.001, "a number > 0"),
    (["trainer.epochs=0"], "trainer.epochs", 0, "an integer >= 1"),
    (["trainer.batch_size=0"], "trainer.batch_size", 0, "an integer >= 1"),
    (["model.bottleneck=16"], "model.bottleneck", 16, "equal to eval.n_clusters=10 with eval.readout=argmax"),
    (["eval.n_clusters=12"], "model.bottleneck", 10, "equal to eval.n_clusters=12 with eval.readout=argmax"),
    (["device.type=tpu"], "device.type", "tpu", "one of: auto, cpu, cuda, mps"),
    (["trainer.epochs=abc"], "trainer.epochs", "abc", "an integer >= 1"),
    (["trainer.epochs=2.5"], "trainer.epochs", 2.5, "an integer >= 1"),
    (["trainer.compile=maybe"], "trainer.compile", "maybe", "true or false"),
    (["trainer.cuda_graph=maybe"], "trainer.cuda_graph", "maybe", "one of: auto, true, false"),
    (["trainer.cudnn_benchmark=1"], "trainer.cudnn_benchmark", 1, "one of: auto, true, false"),
    (["trainer.amp=bf16"], "trainer.amp", "bf16", "one of: auto, true, false"),
    (["optimizer.lr=fast"], "optimizer.lr", "fast", "a number > 0"),
    (["loss.recon_weight=0"], "loss.recon_weight", 0, "> 0, or another loss term's weight > 0"),
    (["model.temperature=0"], "model.temperature", 0, "a number > 0"),
    (["model.bottleneck_activation=relu"], "model.bottleneck_activation", "relu", "one of: softmax, sigmoid, none"),
    (["data.val_size=60000"], "data.val_size", 60000, "fewer than the 60000 training images"),
    (["data.subset=0"], "data.subset", 0, "an integer >= 1 or null"),
    (["model=conv", "model.overcluster=-5"], "model.overcluster", -5, "an integer >= 0"),
    (["model=conv", "model.overcluster=50", "loss.overcluster_weight=0"], "loss.overcluster_weight", 0,
     "> 0 with model.overcluster=50"),
    (["loss.overcluster_weight=-1"], "loss.overcluster_weight", -1, "a number >= 0"),
    (["loss.views=0"], "loss.views", 0, "an integer >= 1"),
    (["augment.erase=1"], "augment.erase", 1, "a number >= 0 and < 1"),
    (["trainer.n_init=0"], "trainer.n_init", 0, "an integer >= 1"),
    (["trainer.n_init=3", "trainer.epochs=2", "trainer.init_epochs=3"], "trainer.init_epochs", 3,
     "at most trainer.epochs=2"),
    (["seed=4294967296"], "seed", 4294967296, "an integer >= 0 and <= 4294967295"),
    (["data.split_seed=18446744073709551616"], "data.split_seed", 18446744073709551616,
     "an integer >= 0 and <= 18446744073709551615"),
    (["model=conv", "model.heads=2"], "model.heads", 2, "1 unless a clustering term's weight is > 0"),
    (["model=conv", "trainer.batch_size=1"], "trainer.batch_size", 1, "at least 2 with model.batch_norm=true"),
]


@pytest.mark.parametrize("overrides, key, value, allowed", BAD, ids=[" ".join(case[0]) for case in BAD])
def test_bad_value_is_refused_naming_key_value_and_what_is_allowed(overrides, key, value, allowed):
    error = refusal(*overrides)
    assert (error.key, error.value) == (key, value)
    assert allowed in error.allowed
    message = str(error)
    assert "\n" not in message
    assert message.startswith(f"{key}=") and str(value) in message and allowed in message


def test_argmax_width_error_says_how_to_compare_other_widths():
    with pytest.raises(ConfigError) as raised:
        validate(compose_config("model.bottleneck=16"))
    assert "eval.readout=kmeans" in str(raised.value) and "eval.allow_overclustering=true" in str(raised.value)


def test_a_clustering_term_alone_is_a_valid_objective():
    validate(compose_config("loss.recon_weight=0", "loss.entropy_weight=0.1"))


@pytest.mark.parametrize(
    "overrides, value, allowed",
    [
        (["model=conv", "model.hidden=0"], 0, "an integer >= 1 or null"),
        (["model=conv", "model.hidden=-5"], -5, "an integer >= 1 or null"),
        (["model=mlp", "model.hidden=abc"], "abc", "a list of integers >= 1"),
        (["model=mlp", "model.hidden=[64,0]"], [64, 0], "a list of integers >= 1"),
    ],
)
def test_hidden_widths_follow_the_chosen_model(overrides, value, allowed):
    error = refusal(*overrides)
    assert (error.key, error.value) == ("model.hidden", value)
    assert error.allowed.startswith(allowed)
    validate(compose_config("model=conv", "model.hidden=null"))
    validate(compose_config("model=mlp", "model.hidden=[]"))


def test_kmeans_cannot_ask_for_more_clusters_than_training_images():
    with pytest.raises(ConfigError) as caught:
        validate(compose_config("eval.readout=kmeans", "eval.n_clusters=501", "data.subset=500"))
    assert caught.value.key == "eval.n_clusters"
    assert caught.value.allowed.startswith("at most the 500 training images")
    validate(compose_config("eval.readout=kmeans", "eval.n_clusters=500", "data.subset=500"))


def test_a_per_layer_list_must_have_one_entry_per_conv_layer():
    error = refusal("model=conv", "model.kernels=[3,3]")
    assert (error.key, error.value) == ("model.kernels", [3, 3])
    assert error.allowed == "a list of 3 integers, one per entry of model.channels"

