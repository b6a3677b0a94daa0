"""Training runs on real MNIST on CPU: the files a run leaves, honest metrics, determinism, divergence.

Each run costs seconds to tens of seconds, so the runs are module fixtures shared by the tests that read them.
"""

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import CONF_DIR, DATA_ROOT, compose_config, train_py
from PIL import Image
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from aesweep.metrics import UNMAPPED, fit_cluster_to_label_map, fit_one_to_one_map
from aesweep.model import BlogAutoencoder
from aesweep.data import load_splits
from aesweep.train import Scorer, init_seed, run


METRIC_KEYS = ["mapped_acc", "hungarian_acc", "nmi", "ari", "clusters_used", "recon_mse"]
HISTORY_COLUMNS = ["epoch", "loss", "loss.recon", "lr", "fit.cluster_entropy", "val.mapped_acc", "val.hungarian_acc",
                   "val.nmi", "val.ari", "val.clusters_used", "val.recon_mse", "seconds"]


def strict_json(path):
    """metrics.json as strict JSON: NaN or Infinity in it would be an error, not a float."""
    def refuse(constant):
        raise ValueError(f"{path} holds {constant}, which is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


# ---------------------------------------------------------------- the blog recipe, 2 epochs on 3000 images


@pytest.fixture(scope="module")
def blog_run(tmp_path_factory, mnist_root):
    run_dir = tmp_path_factory.mktemp("blog") / "run"
    result = train_py("trainer.epochs=2", "data.subset=3000", "data.val_size=1000", "device=cpu",
                      f"hydra.run.dir={run_dir}")
    return result, run_dir


@pytest.fixture(scope="module")
def blog_metrics(blog_run):
    result, run_dir = blog_run
    assert result.returncode == 0, result.stderr
    return strict_json(run_dir / "metrics.json")


def test_run_exits_0_without_errors(blog_run):
    result, _ = blog_run
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "name",
    ["metrics.json", "history.csv", "confusion.png", "reconstructions.png", "model.pt", ".hydra/config.yaml",
     ".hydra/overrides.yaml"],
)
def test_run_writes_its_file(blog_run, name):
    _, run_dir = blog_run
    assert (run_dir / name).is_file() and (run_dir / name).stat().st_size > 0


def test_run_leaves_no_temporary_files(blog_run):
    _, run_dir = blog_run
    assert [p.name for p in run_dir.rglob("*") if ".tmp" in p.name] == []


def test_reconstructions_png_is_16_originals_above_their_reconstructions_under_their_digits(blog_run):
    _, run_dir = blog_run
    with Image.open(run_dir / "reconstructions.png") as image:
        assert image.format == "PNG"
        width, height = image.size
    assert width == 16 * 30 + 2  # 28 px images on torchvision's 2 px grid
    assert 2 * 30 + 2 < height < 2 * 30 + 2 + 28  # under a band naming each column's digit, one character high


def test_confusion_png_is_a_png_image(blog_run):
    _, run_dir = blog_run
    with Image.open(run_dir / "confusion.png") as image:
        assert image.format == "PNG" and min(image.size) >= 100


def test_history_has_one_row_per_epoch_with_the_documented_columns(blog_run):
    _, run_dir = blog_run
    history = pd.read_csv(run_dir / "history.csv")
    assert list(history.columns) == HISTORY_COLUMNS
    assert history["epoch"].tolist() == [1, 2]
    assert history["lr"].tolist() == [0.01, 0.01]
    assert history["loss"].tolist() == history["loss.recon"].tolist()  # mse only, weight 1
    assert 0 < history["seconds"][0] < history["seconds"][1]
    assert history["loss"][1] < history["loss"][0]  # it learns


def test_history_last_epoch_val_metrics_equal_the_final_ones(blog_run, blog_metrics):
    _, run_dir = blog_run
    last = pd.read_csv(run_dir / "history.csv").iloc[-1]
    for key in METRIC_KEYS:
        assert last[f"val.{key}"] == pytest.approx(blog_metrics["val"][key], rel=1e-12)


def test_metrics_describe_the_completed_run(blog_metrics):
    assert blog_metrics["status"] == "completed" and blog_metrics["reason"] is None
    assert (blog_metrics["epochs"], blog_metrics["epochs_planned"]) == (2, 2)
    assert blog_metrics["params"] == 1_644_083
    assert (blog_metrics["device"], blog_metrics["seed"], blog_metrics["trial"]) == ("cpu", 0, None)
    assert blog_metrics["seconds"] > 0
    assert set(blog_metrics["versions"]) == {"python", "torch", "torchvision", "hydra", "optuna", "numpy"}


@pytest.mark.parametrize("split", ["fit", "val", "test"])
def test_split_metrics_are_in_range(blog_metrics, split):
    scores = blog_metrics[split]
    assert list(scores) == METRIC_KEYS
    for key in ("mapped_acc", "hungarian_acc", "nmi"):
        assert 0 <= scores[key] <= 1
    assert -1 <= scores["ari"] <= 1
    assert isinstance(scores["clusters_used"], int) and 1 <= scores["clusters_used"] <= 10
    assert 0 < scores["recon_mse"] < 1


def test_on_the_fit_split_the_majority_mapping_scores_at_least_the_one_to_one_matching(blog_metrics):
    assert blog_metrics["fit"]["hungarian_acc"] <= blog_metrics["fit"]["mapped_acc"]


def test_confusion_matrices_count_the_fit_and_test_images(blog_metrics):
    fit, test = np.array(blog_metrics["confusion"]["fit"]), np.array(blog_metrics["confusion"]["test"])
    assert fit.shape == test.shape == (10, 10)  # cluster x digit
    assert (fit.sum(), test.sum()) == (3000, 10000)
    # official test set digit counts
    assert test.sum(axis=0).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_mapping_is_fitted_on_the_fit_split(blog_metrics):
    fit = np.array(blog_metrics["confusion"]["fit"])
    assert blog_metrics["mapping"] == fit_cluster_to_label_map(fit).tolist()


def test_test_accuracies_recomputed_from_the_confusion_matrices(blog_metrics):
    fit, test = np.array(blog_metrics["confusion"]["fit"]), np.array(blog_metrics["confusion"]["test"])

    def accuracy(mapping):  # images of cluster c count right when c's fitted digit is their label
        return sum(test[c, d] for c, d in enumerate(mapping) if d != UNMAPPED) / test.sum()

    assert blog_metrics["test"]["mapped_acc"] == accuracy(fit_cluster_to_label_map(fit))
    assert blog_metrics["test"]["hungarian_acc"] == accuracy(fit_one_to_one_map(fit))
    assert blog_metrics["test"]["clusters_used"] == int((test.sum(axis=1) > 0).sum())


def test_fit_accuracy_recomputed_from_its_own_confusion_matrix(blog_metrics):
    fit = np.array(blog_metrics["confusion"]["fit"])
    assert blog_metrics["fit"]["mapped_acc"] == fit.max(axis=1).sum() / fit.sum()


def test_test_nmi_and_ari_recomputed_from_the_confusion_matrix(blog_metrics):
    test = np.array(blog_metrics["confusion"]["test"])
    clusters, labels = np.nonzero(test)
    counts = test[clusters, labels]
    clusters, labels = np.repeat(clusters, counts), np.repeat(labels, counts)
    assert blog_metrics["test"]["nmi"] == pytest.approx(normalized_mutual_info_score(labels, clusters), abs=1e-12)
    assert blog_metrics["test"]["ari"] == pytest.approx(adjusted_rand_score(labels, clusters), abs=1e-12)


def test_saved_weights_load_into_the_seed_model(blog_run):
    _, run_dir = blog_run
    state = torch.load(run_dir / "model.pt", map_location="cpu", weights_only=True)
    BlogAutoencoder().load_state_dict(state)  # strict: same layers, same shapes


def test_hydra_config_records_the_overrides(blog_run):
    _, run_dir = blog_run
    text = (run_dir / ".hydra" / "overrides.yaml").read_text()
    assert "trainer.epochs=2" in text and "data.subset=3000" in text


# ---------------------------------------------------------------- determinism (in process: no CLI under test)

TINY = ["trainer.epochs=1", "data.subset=2000", "data.val_size=1000", "trainer.save_weights=false", "device=cpu",
        f"data.root={DATA_ROOT}"]
SCORED = ("val", "test", "fit", "confusion", "mapping")


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory, mnist_root):
    """Three tiny runs: seed 0 twice, seed 1 once. Returns (metrics, history) per run."""
    runs = {}
    for name, seed in (("first", 0), ("again", 0), ("other", 1)):
        out_dir = tmp_path_factory.mktemp(name)
        metrics = run(compose_config(*TINY, f"seed={seed}"), out_dir)
        runs[name] = (metrics, pd.read_csv(out_dir / "history.csv"))
    return runs


def test_same_seed_on_cpu_gives_identical_metrics(tiny_runs):
    (first, first_history), (again, again_history) = tiny_runs["first"], tiny_runs["again"]
    assert first["status"] == again["status"] == "completed"
    assert {k: first[k] for k in SCORED} == {k: again[k] for k in SCORED}
    pd.testing.assert_frame_equal(first_history.drop(columns="seconds"), again_history.drop(columns="seconds"))


def test_different_seed_gives_a_different_run(tiny_runs):
    (first, first_history), (other, other_history) = tiny_runs["first"], tiny_runs["other"]
    assert first_history["loss"][0] != other_history["loss"][0]
    assert {k: first[k] for k in SCORED} != {k: other[k] for k in SCORED}


def test_with_n_init_the_initialisation_whose_clusters_are_most_even_goes_on(tmp_path, mnist_root):
    metrics = run(compose_config(*TINY, "trainer.epochs=2", "trainer.n_init=3", "trainer.init_epochs=1"), tmp_path)
    history = pd.read_csv(tmp_path / "history.csv")

    inits = metrics["inits"]
    assert [init["seed"] for init in inits] == [0, init_seed(0, 1), init_seed(0, 2)]
    entropies = [init["fit_cluster_entropy"] for init in inits]
    assert len(set(entropies)) == 3 and all(0 < e <= np.log(10) for e in entropies)
    chosen = int(np.argmax(entropies))
    assert [init["chosen"] for init in inits] == [i == chosen for i in range(3)]
    # the chosen initialisation's first epoch is the run's first epoch; the run goes on from it
    assert list(history["epoch"]) == [1, 2] and metrics["epochs"] == 2
    assert history["fit.cluster_entropy"][0] == entropies[chosen]
    assert history["val.mapped_acc"][0] == inits[chosen]["val_mapped_acc"]


def test_initialisation_seeds_are_the_runs_own_then_ones_no_other_run_uses():
    assert init_seed(7, 0) == 7
    drawn = {init_seed(seed, init) for seed in range(100) for init in range(1, 5)}
    assert len(drawn) == 400 and not drawn & set(range(100))


def test_a_single_initialisation_is_the_run_as_before(tiny_runs):
    first, _ = tiny_runs["first"]
    assert first["inits"] is None


def test_with_ema_decay_training_is_unchanged_and_the_scored_and_saved_weights_are_its_average(tiny_runs, tmp_path,
                                                                                          mnist_root):
    plain, plain_history = tiny_runs["first"]
    cfg = compose_config(*TINY, "trainer.ema_decay=0.9", "trainer.save_weights=true")
    averaged = run(cfg, tmp_path)
    history = pd.read_csv(tmp_path / "history.csv")
    losses = [column for column in plain_history.columns if column.startswith("loss")]
    pd.testing.assert_frame_equal(history[losses], plain_history[losses])  # the same steps were taken
    assert averaged["confusion"]["test"] != plain["confusion"]["test"]  # other weights were scored

    model = BlogAutoencoder()
    model.load_state_dict(torch.load(tmp_path / "model.pt", weights_only=True))
    splits = load_splits(cfg.data, torch.device("cpu"))
    scorer = Scorer(cfg, splits)
    scorer.fit(model)
    rescored, _ = scorer.score(model, splits.test)
    assert rescored == pytest.approx(averaged["test"], rel=1e-9)  # model.pt holds the weights the run scored


# ---------------------------------------------------------------- divergence


def test_nan_loss_ends_the_run_as_diverged_with_exit_0(tmp_path, mnist_root):
    run_dir = tmp_path / "run"
    # lr 1e20 overflows the weights to inf within the first epoch; NaN follows (lr 1e6 does not: the sigmoid saturates)
    result = train_py("optimizer.lr=1e20", "trainer.epochs=3", "data.subset=2000", "data.val_size=1000",
                      "device=cpu", f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    metrics = strict_json(run_dir / "metrics.json")
    assert metrics["status"] == "diverged"
    assert "epoch 1" in metrics["reason"] and ("nan" in metrics["reason"] or "inf" in metrics["reason"])
    assert (metrics["epochs"], metrics["epochs_planned"]) == (0, 3)
    assert metrics["val"] is None and metrics["test"] is None
    assert metrics["params"] == 1_644_083


# ---------------------------------------------------------------- pruning


def run_trial_that_any_score_prunes(tmp_path, epochs: int):
    """train.py as the sweeper launches a trial's job, in a study whose pruner cuts every reported score."""
    import optuna

    from aesweep.storage import open_storage
    from aesweep.trial import PRUNER_ATTR

    journal = str(tmp_path / "journal.log")
    study = optuna.create_study(study_name="s", storage=open_storage(journal), direction="maximize")
    study.set_user_attr(PRUNER_ATTR, {"_target_": "optuna.pruners.ThresholdPruner", "lower": 1.01})
    trial = study.ask()
    run_dir = tmp_path / "run"
    result = train_py(f"trainer.epochs={epochs}", "data.subset=2000", "data.val_size=1000", "device=cpu",
                      "trial.study_name=s", f"trial.storage={journal}", f"trial.trial_id={trial._trial_id}",
                      f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr
    return study, run_dir


def test_a_pruned_trial_stops_after_the_epoch_and_skips_the_final_scoring(tmp_path, mnist_root):
    study, run_dir = run_trial_that_any_score_prunes(tmp_path, epochs=3)
    metrics = strict_json(run_dir / "metrics.json")
    history = pd.read_csv(run_dir / "history.csv")
    assert (metrics["status"], metrics["reason"]) == ("pruned", "pruned after epoch 1")
    assert (metrics["epochs"], metrics["epochs_planned"], len(history)) == (1, 3, 1)
    assert metrics["val"] == {k: history[f"val.{k}"][0] for k in METRIC_KEYS}  # the epoch it was pruned at
    assert metrics["test"] is None and metrics["fit"] is None and metrics["confusion"] is None
    assert not any((run_dir / name).exists() for name in ("model.pt", "confusion.png", "reconstructions.png"))
    assert study.trials[0].intermediate_values == {1: metrics["val"]["mapped_acc"]}


def test_after_its_last_epoch_a_trial_reports_and_completes_whatever_the_pruner_says(tmp_path, mnist_root):
    study, run_dir = run_trial_that_any_score_prunes(tmp_path, epochs=1)
    metrics = strict_json(run_dir / "metrics.json")
    assert (metrics["status"], metrics["epochs"]) == ("completed", 1)
    assert metrics["test"] is not None and (run_dir / "confusion.png").exists()
    assert study.trials[0].intermediate_values == {1: pd.read_csv(run_dir / "history.csv")["val.mapped_acc"][0]}


# ---------------------------------------------------------------- bf16 autocast (trainer.amp)


@pytest.mark.parametrize("amp, device, native, loss, expected", [
    ("auto", "cpu", True, "mse", True),     # reconstruction on a CPU that computes in bf16: on by default
    ("auto", "cpu", True, "iic", False),    # clustering terms: not shown harmless in bf16, so float32
    ("auto", "cpu", True, "imsat", False),
    ("auto", "cpu", False, "mse", False),   # emulated bf16 would be slower than float32
    ("auto", "cuda", True, "mse", False),   # no gain measured on the H100
    (True, "cuda", False, "iic", True),
    (True, "cpu", True, "iic", True),       # asked for: on, clustering or not
    (False, "cpu", True, "mse", False),
])
def test_amp_auto_is_on_for_reconstruction_on_cpus_with_native_bf16(monkeypatch, amp, device, native, loss, expected):
    import aesweep.step as train

    monkeypatch.setattr(train, "native_bf16_cpu", lambda: native)
    cfg = compose_config(f"trainer.amp={str(amp).lower()}", f"loss={loss}")
    assert train.amp_enabled(cfg, torch.device(device)) is expected


def test_amp_true_on_a_cpu_without_native_bf16_is_refused_naming_the_key(monkeypatch):
    import aesweep.step as train
    from aesweep.errors import ConfigError

    monkeypatch.setattr(train, "native_bf16_cpu", lambda: False)
    with pytest.raises(ConfigError) as refused:
        train.amp_enabled(compose_config("trainer.amp=true"), torch.device("cpu"))
    assert str(refused.value) == ("trainer.amp=true is not allowed: auto or false on cpu: "
                                  "it has no native bf16 (AVX512-BF16 or AMX)")


def epoch_losses(mnist_root, *overrides: str) -> list[float]:
    """Mean training loss of 3 epochs of the blog recipe on 1,024 images, with the overrides given."""
    from aesweep.data import load_splits
    from aesweep.train import build_training, train_one_epoch

    cfg = compose_config("data.subset=1024", "data.val_size=1000", f"data.root={mnist_root}", "device=cpu",
                         *overrides)
    torch.manual_seed(0)
    splits = load_splits(cfg.data, torch.device("cpu"))
    step = build_training(cfg, splits, torch.device("cpu"))
    generator = torch.Generator().manual_seed(0)
    no_bar = lambda batches, desc: batches  # noqa: E731
    return [train_one_epoch(step, splits, cfg, epoch, generator, no_bar)["loss"] for epoch in range(3)]


def test_a_last_batch_of_one_image_is_left_out_so_that_batchnorm_trains(mnist_root):
    from aesweep.data import load_splits
    from aesweep.train import build_training, train_one_epoch

    cfg = compose_config("model=conv", "trainer.batch_size=128", "data.subset=129", "data.val_size=1000",
                         f"data.root={mnist_root}", "device=cpu")
    splits = load_splits(cfg.data, torch.device("cpu"))
    step = build_training(cfg, splits, torch.device("cpu"))
    assert len(splits.train) == 129 and step.model.training

    losses = train_one_epoch(step, splits, cfg, 0, torch.Generator().manual_seed(0), lambda batches, desc: batches)

    assert math.isfinite(losses["loss"]) and losses["loss"] > 0  # BatchNorm would refuse a batch of one


@pytest.mark.skipif(not torch.ops.mkldnn._is_mkldnn_bf16_supported(), reason="needs a CPU with native bf16")
def test_bf16_on_cpu_trains_like_float32(mnist_root):
    float32, bf16 = epoch_losses(mnist_root, "trainer.amp=false"), epoch_losses(mnist_root, "trainer.amp=true")

    assert bf16 != float32  # bf16 really ran: its rounding shows in the losses
    assert bf16 == pytest.approx(float32, rel=2e-3)
    assert bf16[-1] < bf16[0]


def test_a_plain_hydra_multirun_names_its_folder_after_the_job_and_a_sweep_after_its_file():
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name="train"):
        for overrides, folder in (([], "outputs/sweeps/train/"), (["sweep=smoke"], "outputs/sweeps/smoke/")):
            cfg = compose("config", overrides=overrides, return_hydra_config=True)
            HydraConfig.instance().set_config(cfg)
            assert cfg.hydra.sweep.dir.startswith(folder)


def test_a_refused_job_of_a_plain_hydra_multirun_is_one_error_line_and_leaves_no_folder(tmp_path, mnist_root):
    sweep_dir = tmp_path / "multirun"
    result = train_py("-m", "model.activation=swish,relu", "data.subset=300", "trainer.epochs=1", "device=cpu",
                      f"data.root={mnist_root}", f"hydra.sweep.dir={sweep_dir}", timeout=120)
    assert "Traceback" not in result.stderr + result.stdout
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert errors == ["error: model.activation='swish' is not allowed: one of: relu, leaky_relu, elu, gelu, silu, tanh"]
    assert not sweep_dir.exists()


def test_with_several_heads_the_run_scores_the_head_with_the_lowest_clustering_loss(tmp_path, mnist_root):
    cfg = compose_config(*TINY, "model=conv", "model.heads=3", "loss=imsat", "trainer.epochs=2",
                         "trainer.save_weights=true")
    result = run(cfg, tmp_path)
    history = pd.read_csv(tmp_path / "history.csv")
    for _, epoch in history.iterrows():
        losses = [epoch[f"loss.head{h}"] for h in range(3)]
        assert epoch["selected_head"] == losses.index(min(losses))
    (selected,) = [value for name, value in torch.load(tmp_path / "model.pt").items() if name.endswith(".selected")]
    assert int(selected) == history["selected_head"].iloc[-1]  # the weights know which head was scored
    assert result["status"] == "completed" and 0 <= result["test"]["mapped_acc"] <= 1
