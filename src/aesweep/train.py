"""One training run, top to bottom: config -> data -> model -> loop -> metrics -> files.

`run(cfg, out_dir)` is the whole story; the hot loop is `train_one_epoch`, visible in full.
"""

from __future__ import annotations

import logging
import math
import platform
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from aesweep import metrics as M
from aesweep import record, tracking
from aesweep.augment import BatchAugment
from aesweep.config import CONF_DIR, validate
from aesweep.overrides import check_command_line
from aesweep.data import DATASETS, Split, Splits, load_splits
from aesweep.errors import AesweepError, ConfigError
from aesweep.io import write_csv_atomic
from aesweep.loss import CompositeLoss
from aesweep.model import Autoencoder, count_parameters
from aesweep.optim import build_optimizer, build_schedule
from aesweep.step import TrainingStep, apply_speed_switches, channels_last

log = logging.getLogger(__name__)

def resolve_device(device_cfg) -> torch.device:
    """auto = cuda, then mps, then cpu; an explicit accelerator that is absent is a user error."""
    kind = device_cfg.type
    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu"
    if kind == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device", "cuda", "a device this machine has: no CUDA GPU is visible (try device=cpu)")
    if kind == "mps" and not has_mps:
        raise ConfigError("device", "mps", "a device this machine has: MPS is not available (try device=cpu)")
    return torch.device(kind)


def apply_process_settings(trainer_cfg) -> None:
    """Process-wide settings a run needs before its first big allocation: torch's CPU threads."""
    if trainer_cfg.threads:
        torch.set_num_threads(trainer_cfg.threads)


def checked_config(overrides: Sequence[str]) -> tuple[DictConfig, torch.device]:
    """The config `python train.py <overrides>` would run and its device, refused in one line wherever
    train.py would refuse it (command line, composition, validation, an absent device). For the tools
    that prepare or time runs without going through train.py's Hydra main (bench, reseed)."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    check_command_line(list(overrides), CONF_DIR)
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose("config", overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as exc:
        raise AesweepError(" ".join(str(exc).split())) from None
    validate(cfg)
    return cfg, resolve_device(cfg.device)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def n_clusters_of(cfg: DictConfig) -> int:
    """Clusters scored: eval.n_clusters, or every bottleneck unit when argmax overclusters."""
    if cfg.eval.readout == "argmax":
        return int(cfg.model.bottleneck)
    return int(cfg.eval.n_clusters)


@torch.no_grad()
def encode(model: Autoencoder, split: Split, batch_size: int, with_recon: bool) -> tuple[np.ndarray, float | None]:
    """Bottleneck codes of a whole split (numpy, float32) and, if asked, its reconstruction MSE."""
    model.eval()
    codes, squared_error = [], torch.zeros((), device=split.images.device, dtype=torch.float64)
    for start in range(0, len(split), batch_size):
        x = split.batch(torch.arange(start, min(start + batch_size, len(split)), device=split.images.device))
        if with_recon:  # the decoder reads every head's code; the scored code is the selected head's
            _, every_code, recon, _ = model.parts(x)
            code = every_code[:, model.heads.selected]
            squared_error += ((recon.float() - x) ** 2).sum(dtype=torch.float64)
        else:
            code = model.encoder(x)
        codes.append(code.float().cpu())
    model.train()
    recon_mse = float(squared_error) / (len(split) * 28 * 28) if with_recon else None
    return torch.cat(codes).numpy(), recon_mse


class Scorer:
    """Fits readout + cluster->class mappings on the training split and scores other splits with them."""

    def __init__(self, cfg: DictConfig, splits: Splits):
        self.cfg, self.splits = cfg, splits
        self.n_clusters = n_clusters_of(cfg)

    def fit(self, model: Autoencoder, with_recon: bool = False) -> dict:
        codes, recon_mse = encode(model, self.splits.train, self.cfg.eval.batch_size, with_recon)
        self.readout = M.make_readout(self.cfg.eval.readout, self.n_clusters, self.cfg.seed, self.cfg.eval.kmeans_n_init)
        clusters = self.readout.fit(codes).assign(codes)
        labels = self.splits.train.labels.cpu().numpy()
        self.fit_confusion = M.confusion_matrix(clusters, labels, self.n_clusters)
        self.fit_cluster_entropy = M.cluster_entropy(clusters, self.n_clusters)
        self.majority_map = M.fit_cluster_to_label_map(self.fit_confusion)
        self.one_to_one_map = M.fit_one_to_one_map(self.fit_confusion)
        return self._score(clusters, labels, recon_mse)

    def score(self, model: Autoencoder, split: Split) -> tuple[dict, np.ndarray]:
        codes, recon_mse = encode(model, split, self.cfg.eval.batch_size, with_recon=True)
        clusters = self.readout.assign(codes)
        labels = split.labels.cpu().numpy()
        return self._score(clusters, labels, recon_mse), M.confusion_matrix(clusters, labels, self.n_clusters)

    def _score(self, clusters: np.ndarray, labels: np.ndarray, recon_mse: float | None) -> dict:
        scores = M.score_assignments(clusters, labels, self.majority_map, self.one_to_one_map, self.n_clusters)
        return {**scores, "recon_mse": recon_mse}


def build_training(cfg: DictConfig, splits: Splits, device: torch.device) -> TrainingStep:
    """Model (in its speed modes), optimizer, per-step schedule and loss, bundled as the step the loop repeats.

    `aesweep bench` times `train_one_epoch` on exactly this step.
    """
    model: Autoencoder = instantiate(cfg.model).to(device)
    model = apply_speed_switches(model, cfg.trainer, device)
    optimizer = build_optimizer(cfg.optimizer, model)
    steps_per_epoch = math.ceil(len(splits.train) / cfg.trainer.batch_size)
    schedule = build_schedule(cfg.scheduler, optimizer, steps_per_epoch, cfg.trainer.epochs)
    loss_fn = CompositeLoss(cfg.loss, BatchAugment(**cfg.augment))
    return TrainingStep(model, optimizer, schedule, loss_fn, cfg, device)


def select_head(model: Autoencoder, losses: dict[str, float]) -> int:
    """The head to score: the one whose own clustering loss was lowest over the epoch (no label is used)."""
    chosen = min(range(model.heads.heads), key=lambda h: losses[f"loss.head{h}"])
    model.heads.selected.fill_(chosen)
    return chosen


def train_and_score_epoch(step: TrainingStep, splits: Splits, cfg: DictConfig, epoch: int, generator, progress,
                          scorer: Scorer, started: float) -> dict:
    """One epoch, then the history row: the loss terms, the label-free fit.cluster_entropy and the validation
    scores; a row {"diverged": reason} when a loss is no longer finite."""
    losses = train_one_epoch(step, splits, cfg, epoch, generator, progress)
    if not all(math.isfinite(v) for v in losses.values()):
        return {"diverged": f"loss became {losses['loss']} in epoch {epoch + 1}"}
    if step.model.heads.heads > 1:
        losses["selected_head"] = select_head(step.model, losses)
    scorer.fit(step.scored_model)
    val, _ = scorer.score(step.scored_model, splits.val)
    return {"epoch": epoch + 1, **losses, "lr": step.lr, "fit.cluster_entropy": scorer.fit_cluster_entropy,
            **{f"val.{k}": v for k, v in val.items()}, "seconds": time.perf_counter() - started}


def init_seed(seed: int, init: int) -> int:
    """The seed of initialisation `init`: the run's own for the first (so trainer.n_init=1 is the run it always
    was), one drawn from (seed, init) for the others, never another run's."""
    return seed if init == 0 else int(np.random.SeedSequence([seed, init]).generate_state(1)[0])


def best_init(first: TrainingStep, cfg: DictConfig, splits: Splits, device: torch.device, scorer: Scorer, progress,
              started: float) -> tuple[TrainingStep, torch.Generator, list[dict], list[dict] | None]:
    """trainer.n_init initialisations, each trained trainer.init_epochs epochs; the one whose clusters share the
    training images most evenly (highest fit.cluster_entropy, no label used) goes on.

    Why: on all of MNIST a run that ends with two digits in one cluster, or with a style of a digit (sevens with
    a bar) in another digit's, ends with clusters of less even sizes, and mostly shows it after a few epochs
    (outputs/reference/full-data-cpu/). Returns the chosen step, its shuffling generator, the history rows it
    has trained, and each initialisation's seed and scores (None when n_init is 1)."""
    generator = torch.Generator().manual_seed(cfg.seed)
    if cfg.trainer.n_init == 1:
        return first, generator, [], None
    best, inits = None, []
    for init in range(cfg.trainer.n_init):
        seed = init_seed(cfg.seed, init)
        if init > 0:
            seed_everything(seed)
            first, generator = build_training(cfg, splits, device), torch.Generator().manual_seed(seed)
        rows: list[dict] = []
        for epoch in range(cfg.trainer.init_epochs):
            rows.append(train_and_score_epoch(first, splits, cfg, epoch, generator, progress, scorer, started))
            if "diverged" in rows[-1]:
                break
        entropy = -math.inf if "diverged" in rows[-1] else rows[-1]["fit.cluster_entropy"]
        inits.append({"seed": seed, "fit_cluster_entropy": entropy if math.isfinite(entropy) else None,
                      "val_mapped_acc": rows[-1].get("val.mapped_acc")})
        log.info("initialisation %d/%d (seed %d): fit.cluster_entropy %.5f val.mapped_acc %s", init + 1,
                 cfg.trainer.n_init, seed, entropy, rows[-1].get("val.mapped_acc"))
        if best is None or entropy > best[0]:
            best = (entropy, init, first, generator, rows)
    _, chosen, step, generator, rows = best
    for init, scores in enumerate(inits):
        scores["chosen"] = init == chosen
    log.info("initialisation %d/%d goes on", chosen + 1, cfg.trainer.n_init)
    return step, generator, rows, inits


def train_one_epoch(step: TrainingStep, splits: Splits, cfg: DictConfig, epoch: int, generator,
                    progress) -> dict[str, float]:
    """One pass over the training split in shuffled batches; returns the mean of each loss term."""
    train = splits.train
    device = train.images.device
    order = torch.randperm(len(train), generator=generator).to(device)
    # A last batch of one image is left out: BatchNorm cannot normalise it (one shuffled image an epoch)
    end = len(train) - 1 if len(train) % cfg.trainer.batch_size == 1 and len(train) > 1 else len(train)
    batches = range(0, end, cfg.trainer.batch_size)
    to_channels_last = channels_last(cfg.trainer, device)
    step.start_epoch(epoch)
    for start in progress(batches, desc=f"epoch {epoch + 1}/{cfg.trainer.epochs}"):
        x = train.batch(order[start : start + cfg.trainer.batch_size])
        if to_channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        step(x)
    return step.epoch_means(len(batches))


def _progress(cfg: DictConfig, multirun: bool):
    show = cfg.trainer.progress
    if show == "auto":
        show = sys.stderr.isatty() and not multirun
    if not show:
        return lambda iterable, desc: iterable
    from tqdm import tqdm

    return lambda iterable, desc: tqdm(iterable, desc=desc, leave=False, unit="batch")


def _versions() -> dict[str, str]:
    """Versions from the installed metadata: importing optuna just to read its version costs ~100 MB."""
    from importlib.metadata import version

    return {
        "python": platform.python_version(), "torch": torch.__version__, "torchvision": version("torchvision"),
        "hydra": version("hydra-core"), "optuna": version("optuna"), "numpy": np.__version__,
    }


def run(cfg: DictConfig, out_dir: str | Path, multirun: bool = False) -> dict:
    """Train and score one autoencoder; write metrics.json, history.csv, plots and weights into out_dir."""
    validate(cfg)
    tracking.prepare(cfg, open_store=False)  # mlflow imports while the data loads
    out_dir = Path(out_dir)
    device = resolve_device(cfg.device)
    apply_process_settings(cfg.trainer)
    seed_everything(cfg.seed)
    started = time.perf_counter()

    splits = load_splits(cfg.data, device)
    step = build_training(cfg, splits, device)
    model = step.model
    params = count_parameters(model)
    scorer = Scorer(cfg, splits)
    reporter = _reporter(cfg)
    tracker = tracking.start(cfg, out_dir)
    progress = _progress(cfg, multirun)
    log.info("%s on %s: %d parameters, %d train / %d val / %d test images",
             type(model).__name__, device, params, len(splits.train), len(splits.val), len(splits.test))

    step, generator, trained, inits = best_init(step, cfg, splits, device, scorer, progress, started)
    history: list[dict] = []
    status, reason = "completed", None
    for epoch in range(cfg.trainer.epochs):
        row = trained[epoch] if epoch < len(trained) else train_and_score_epoch(
            step, splits, cfg, epoch, generator, progress, scorer, started)
        if "diverged" in row:
            status, reason = "diverged", row["diverged"]
            log.warning("run diverged: %s", reason)
            break
        history.append(row)
        tracker.log_epoch(row)
        write_csv_atomic(out_dir / "history.csv", pd.DataFrame(history))
        log.info("epoch %d/%d loss %.4f val.mapped_acc %.4f val.nmi %.3f clusters %d (%.1fs)", epoch + 1,
                 cfg.trainer.epochs, row["loss"], row["val.mapped_acc"], row["val.nmi"], row["val.clusters_used"],
                 row["seconds"])
        val_metrics = {k: v for k, v in row.items() if k.startswith("val.")}
        if reporter is not None and reporter.report(epoch + 1, val_metrics, last=epoch + 1 == cfg.trainer.epochs):
            status, reason = "pruned", f"pruned after epoch {epoch + 1}"
            log.info("trial %s", reason)
            break

    classes = DATASETS[cfg.data.name].classes
    result = {"status": status, "reason": reason, "dataset": cfg.data.name, "classes": list(classes),
              "val": None, "test": None, "fit": None, "confusion": None, "mapping": None}
    if status == "pruned":
        # Nobody selects or reports a pruned trial: its last validation scores say why it stopped, and
        # skipping the refit, test scoring, pictures and weights is part of what pruning saves.
        result["val"] = {k.removeprefix("val."): v for k, v in history[-1].items() if k.startswith("val.")}
    elif status == "completed":
        model = step.scored_model
        fit = scorer.fit(model, with_recon=True)
        val, _ = scorer.score(model, splits.val)
        test, test_confusion = scorer.score(model, splits.test)
        result.update(
            fit=fit, val=val, test=test, mapping=scorer.majority_map.tolist(),
            confusion={"fit": scorer.fit_confusion.tolist(), "test": test_confusion.tolist()},
        )
        _write_pictures(model, splits.test, test_confusion, classes, out_dir)
        if cfg.trainer.save_weights:
            torch.save(model.state_dict(), out_dir / "model.pt")
    result.update(
        params=params, epochs=len(history), epochs_planned=cfg.trainer.epochs,
        seconds=round(time.perf_counter() - started, 3), device=str(device), seed=cfg.seed, inits=inits,
        versions=_versions(),
        trial=None if cfg.trial.study_name is None else {"study_name": cfg.trial.study_name,
                                                          "number": cfg.trial.trial_number},
    )
    record.write(out_dir, result)  # last: its presence means the run ended
    tracker.finish(result, sorted(out_dir.glob("*.png")))
    if result["test"] is not None:
        log.info("done: val.mapped_acc %.4f test.mapped_acc %.4f test.nmi %.3f in %.1fs", result["val"]["mapped_acc"],
                 result["test"]["mapped_acc"], result["test"]["nmi"], result["seconds"])
    return result


def _reporter(cfg: DictConfig):
    if cfg.trial.study_name is None:
        return None
    from aesweep.trial import TrialReporter  # only sweeps need optuna's storage machinery

    return TrialReporter.from_config(cfg.trial, seed=cfg.seed)


def _write_pictures(model: Autoencoder, test: Split, confusion: np.ndarray, classes: Sequence[str],
                    out_dir: Path) -> None:
    from PIL import Image

    from aesweep.plots import save_confusion_png

    save_confusion_png(confusion, out_dir / "confusion.png", title="test split: bottleneck cluster x class",
                       classes=classes)
    with torch.no_grad():
        model.eval()
        x = test.batch(torch.arange(16, device=test.images.device))
        recon = model(x).float()
        model.train()
    names = [classes[label] for label in test.labels[:16].tolist()]
    grid = image_grid(torch.cat([x, recon]).cpu(), columns=16)
    tmp = out_dir / ".reconstructions.tmp.png"
    Image.fromarray(with_column_labels(grid, names, cell=x.shape[-1])).save(tmp, format="PNG")
    tmp.replace(out_dir / "reconstructions.png")


def image_grid(images: torch.Tensor, columns: int, gap: int = 2) -> np.ndarray:
    """[N, 1, H, W] floats in [0, 1] -> one uint8 picture, `columns` wide, on a white grid `gap` px wide.

    (torchvision.utils.save_image draws the same grid, but importing torchvision costs ~160 MB.)
    """
    n, _, height, width = images.shape
    rows = math.ceil(n / columns)
    grid = np.full((rows * (height + gap) + gap, columns * (width + gap) + gap), 255, dtype=np.uint8)
    pixels = (images[:, 0].clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()
    for i, image in enumerate(pixels):
        top, left = gap + (i // columns) * (height + gap), gap + (i % columns) * (width + gap)
        grid[top : top + height, left : left + width] = image
    return grid


def with_column_labels(grid: np.ndarray, labels: Sequence[str], cell: int, gap: int = 2) -> np.ndarray:
    """`grid` (from image_grid) under a band naming each column, written bottom to top: a class name such as
    "Ankle boot" is wider than its 28-px column, but fits upright."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    lengths = [font.getbbox(label)[2] for label in labels]
    line = max(font.getbbox(label)[3] for label in labels)
    band = Image.new("L", (max(lengths) + 2 * gap, grid.shape[1]), 255)  # drawn lying down, then stood up
    draw = ImageDraw.Draw(band)
    for column, label in enumerate(labels):
        top = gap + column * (cell + gap) + (cell - line) // 2
        draw.text((gap, top), label, fill=0, font=font)
    return np.vstack([np.asarray(band.transpose(Image.Transpose.ROTATE_90)), grid])
