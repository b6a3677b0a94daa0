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
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig

from aesweep import metrics as M
from aesweep.augment import BatchAugment
from aesweep.config import validate
from aesweep.data import MNISTSplits, Split, load_splits
from aesweep.errors import AesweepError, ConfigError
from aesweep.io import write_csv_atomic, write_json_atomic
from aesweep.loss import CompositeLoss
from aesweep.model import Autoencoder, count_parameters
from aesweep.optim import build_optimizer, build_schedule

log = logging.getLogger(__name__)

METRIC_KEYS = ("mapped_acc", "hungarian_acc", "nmi", "ari", "clusters_used", "recon_mse")


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
        code = model.encoder(x)
        codes.append(code.float().cpu())
        if with_recon:
            squared_error += ((model.decoder(code).float() - x) ** 2).sum(dtype=torch.float64)
    model.train()
    recon_mse = float(squared_error) / (len(split) * 28 * 28) if with_recon else None
    return torch.cat(codes).numpy(), recon_mse


class Scorer:
    """Fits readout + cluster->digit mappings on the training split and scores other splits with them."""

    def __init__(self, cfg: DictConfig, splits: MNISTSplits):
        self.cfg, self.splits = cfg, splits
        self.n_clusters = n_clusters_of(cfg)

    def fit(self, model: Autoencoder, with_recon: bool = False) -> dict:
        codes, recon_mse = encode(model, self.splits.train, self.cfg.eval.batch_size, with_recon)
        self.readout = M.make_readout(self.cfg.eval.readout, self.n_clusters, self.cfg.seed, self.cfg.eval.kmeans_n_init)
        clusters = self.readout.fit(codes).assign(codes)
        labels = self.splits.train.labels.cpu().numpy()
        self.fit_confusion = M.confusion_matrix(clusters, labels, self.n_clusters)
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


def build_training(cfg: DictConfig, splits: MNISTSplits, device: torch.device):
    """Model (in its speed modes), optimizer, per-step schedule and loss: what the hot loop needs.

    `aesweep bench` times `train_one_epoch` on exactly these objects.
    """
    try:
        model: Autoencoder = instantiate(cfg.model).to(device)
    except InstantiationException as exc:
        if isinstance(exc.__cause__, AesweepError):  # the model's own check of its keys: one line, like the rest
            raise exc.__cause__ from None
        raise
    if channels_last(cfg.trainer, device):
        model = model.to(memory_format=torch.channels_last)
    if cfg.trainer.compile:
        # The loss calls model.parts(x), never model(x): compiling the module would compile nothing
        # the loop runs, so compile the function the loss calls.
        model.parts = torch.compile(model.parts, mode=cfg.trainer.compile_mode)
    optimizer = build_optimizer(cfg.optimizer, model)
    steps_per_epoch = math.ceil(len(splits.train) / cfg.trainer.batch_size)
    schedule = build_schedule(cfg.scheduler, optimizer, steps_per_epoch, cfg.trainer.epochs)
    loss_fn = CompositeLoss(cfg.loss, BatchAugment(**cfg.augment))
    return model, optimizer, schedule, loss_fn


def channels_last(trainer_cfg, device: torch.device) -> bool:
    """trainer.channels_last=auto: on for CPUs, where oneDNN's convolutions (the transposed ones above all)
    run a training step 1.2-1.5x faster on channels-last tensors; off elsewhere until measured there."""
    if trainer_cfg.channels_last == "auto":
        return device.type == "cpu"
    return bool(trainer_cfg.channels_last)


def train_one_epoch(model, splits, optimizer, schedule, loss_fn, cfg, epoch, generator, progress) -> dict[str, float]:
    """One pass over the training split in shuffled batches; returns the mean of each loss term."""
    train = splits.train
    device = train.images.device
    order = torch.randperm(len(train), generator=generator).to(device)
    batches = range(0, len(train), cfg.trainer.batch_size)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cfg.trainer.amp and device.type == "cuda" else nullcontext()
    sums: dict[str, torch.Tensor] = {}
    for start in progress(batches, desc=f"epoch {epoch + 1}/{cfg.trainer.epochs}"):
        x = train.batch(order[start : start + cfg.trainer.batch_size])
        if channels_last(cfg.trainer, device):
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast:
            loss, terms = loss_fn(model, x, epoch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.trainer.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.trainer.grad_clip)
        optimizer.step()
        schedule.step()
        # accumulate on the device: one host sync per epoch, not per step
        for name, value in {"loss": loss, **{f"loss.{k}": v for k, v in terms.items()}}.items():
            sums[name] = sums.get(name, 0) + value.detach().float()
    return {name: float(total) / len(batches) for name, total in sums.items()}


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

    import torchvision

    return {
        "python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
        "hydra": version("hydra-core"), "optuna": version("optuna"), "numpy": np.__version__,
    }


def run(cfg: DictConfig, out_dir: str | Path, multirun: bool = False) -> dict:
    """Train and score one autoencoder; write metrics.json, history.csv, plots and weights into out_dir."""
    validate(cfg)
    out_dir = Path(out_dir)
    device = resolve_device(cfg.device)
    if cfg.trainer.threads:
        torch.set_num_threads(cfg.trainer.threads)
    seed_everything(cfg.seed)
    started = time.perf_counter()

    splits = load_splits(cfg.data, device)
    model, optimizer, schedule, loss_fn = build_training(cfg, splits, device)
    params = count_parameters(model)
    scorer = Scorer(cfg, splits)
    reporter = _reporter(cfg)
    generator = torch.Generator().manual_seed(cfg.seed)
    progress = _progress(cfg, multirun)
    log.info("%s on %s: %d parameters, %d train / %d val / %d test images",
             type(model).__name__, device, params, len(splits.train), len(splits.val), len(splits.test))

    history: list[dict] = []
    status, reason = "completed", None
    for epoch in range(cfg.trainer.epochs):
        losses = train_one_epoch(model, splits, optimizer, schedule, loss_fn, cfg, epoch, generator, progress)
        if not all(math.isfinite(v) for v in losses.values()):
            status, reason = "diverged", f"loss became {losses['loss']} in epoch {epoch + 1}"
            log.warning("run diverged: %s", reason)
            break
        scorer.fit(model)
        val, _ = scorer.score(model, splits.val)
        row = {"epoch": epoch + 1, **losses, "lr": optimizer.param_groups[0]["lr"],
               **{f"val.{k}": v for k, v in val.items()}, "seconds": time.perf_counter() - started}
        history.append(row)
        write_csv_atomic(out_dir / "history.csv", pd.DataFrame(history))
        log.info("epoch %d/%d loss %.4f val.mapped_acc %.4f val.nmi %.3f clusters %d (%.1fs)", epoch + 1,
                 cfg.trainer.epochs, losses["loss"], val["mapped_acc"], val["nmi"], val["clusters_used"], row["seconds"])
        if reporter is not None and reporter.report(epoch + 1, {k: v for k, v in row.items() if k.startswith("val.")}):
            status, reason = "pruned", f"pruned after epoch {epoch + 1}"
            log.info("trial %s", reason)
            break

    result = {"status": status, "reason": reason, "val": None, "test": None, "fit": None,
              "confusion": None, "mapping": None}
    if status != "diverged":
        fit = scorer.fit(model, with_recon=True)
        val, _ = scorer.score(model, splits.val)
        test, test_confusion = scorer.score(model, splits.test)
        result.update(
            fit=fit, val=val, test=test, mapping=scorer.majority_map.tolist(),
            confusion={"fit": scorer.fit_confusion.tolist(), "test": test_confusion.tolist()},
        )
        _write_pictures(model, splits.test, test_confusion, out_dir)
        if cfg.trainer.save_weights:
            torch.save(model.state_dict(), out_dir / "model.pt")
    result.update(
        params=params, epochs=len(history), epochs_planned=cfg.trainer.epochs,
        seconds=round(time.perf_counter() - started, 3), device=str(device), seed=cfg.seed,
        versions=_versions(),
        trial=None if cfg.trial.study_name is None else {"study_name": cfg.trial.study_name,
                                                          "number": cfg.trial.trial_number},
    )
    write_json_atomic(out_dir / "metrics.json", result)  # last: its presence means the run ended
    if result["test"] is not None:
        log.info("done: val.mapped_acc %.4f test.mapped_acc %.4f test.nmi %.3f in %.1fs", result["val"]["mapped_acc"],
                 result["test"]["mapped_acc"], result["test"]["nmi"], result["seconds"])
    return result


def _reporter(cfg: DictConfig):
    if cfg.trial.study_name is None:
        return None
    from aesweep.pruning import TrialReporter  # only sweeps need optuna's storage machinery

    return TrialReporter.from_config(cfg.trial)


def _write_pictures(model: Autoencoder, test: Split, confusion: np.ndarray, out_dir: Path) -> None:
    from torchvision.utils import save_image

    from aesweep.plots import save_confusion_png

    save_confusion_png(confusion, out_dir / "confusion.png", title="test split: bottleneck cluster x digit")
    with torch.no_grad():
        model.eval()
        x = test.batch(torch.arange(16, device=test.images.device))
        recon = model(x).float()
        model.train()
    tmp = out_dir / ".reconstructions.tmp.png"
    save_image(torch.cat([x, recon]).cpu(), tmp, nrow=16, padding=2, pad_value=1.0)
    tmp.replace(out_dir / "reconstructions.png")
