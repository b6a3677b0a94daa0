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
from aesweep.config import CONF_DIR, check_command_line, validate
from aesweep.data import MNISTSplits, Split, load_splits
from aesweep.errors import AesweepError, ConfigError
from aesweep.io import write_csv_atomic, write_json_atomic
from aesweep.loss import CompositeLoss, has_clustering_terms
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


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt() parameter numbers (malloc.h)


def apply_process_settings(trainer_cfg) -> None:
    """Process-wide settings a run needs before its first big allocation: torch threads, matmul precision,
    malloc threshold."""
    torch.set_float32_matmul_precision(trainer_cfg.matmul_precision)
    if trainer_cfg.threads:
        torch.set_num_threads(trainer_cfg.threads)
    if trainer_cfg.mmap_threshold_mb is not None:
        set_mmap_threshold(int(trainer_cfg.mmap_threshold_mb * 2**20))


def set_mmap_threshold(size: int) -> bool:
    """Give every heap block of `size` bytes or more its own mmap, returned to the OS when freed.

    glibc's default threshold is dynamic: after large blocks are freed it rises (up to 32 MB), so the
    batch-1024 activations at scoring time (up to 24 MB each for the seed model) stay in the heap, which
    then fragments - measured, a CPU run of the seed model peaked ~450 MB higher that way. The
    threshold must stay above what every training step allocates: at 4 MB the 6.4 MB gradient of the
    seed model's Linear(400, 4000) was mapped and unmapped (page faults and all) at every step, and
    epochs took 1.2x longer than at 16 MB.
    Setting it turns off glibc's matching rule for the heap's trim threshold (then left at 128 KB, so
    the heap's top was handed back to the OS after every step and faulted in again by the next: 10%
    slower steps), so the trim threshold is set to twice `size`, as that rule would.
    Returns False where there is no glibc (macOS, musl): nothing changes there.
    """
    import ctypes
    import ctypes.util

    if sys.platform != "linux":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, ctypes.c_int(size))
                    and libc.mallopt(M_TRIM_THRESHOLD, ctypes.c_int(2 * size)))
    except (OSError, AttributeError):
        return False


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


def build_training(cfg: DictConfig, splits: MNISTSplits, device: torch.device) -> "TrainingStep":
    """Model (in its speed modes), optimizer, per-step schedule and loss, bundled as the step the loop repeats.

    `aesweep bench` times `train_one_epoch` on exactly this step.
    """
    try:
        model: Autoencoder = instantiate(cfg.model).to(device)
    except InstantiationException as exc:
        if isinstance(exc.__cause__, AesweepError):  # the model's own check of its keys: one line, like the rest
            raise exc.__cause__ from None
        raise
    if triton_convolutions(cfg.trainer, device):
        from aesweep.kernels import use_triton_convolutions  # imports Triton: only where it runs

        log.info("%d convolutions on aesweep's Triton kernels", use_triton_convolutions(model))
    if channels_last(cfg.trainer, device):
        model = model.to(memory_format=torch.channels_last)
    if device.type == "cuda":
        # every batch has the same shape, so timing cuDNN's algorithms once per shape pays for itself
        torch.backends.cudnn.benchmark = cfg.trainer.cudnn_benchmark in ("auto", True)
    if cfg.trainer.compile:
        # The loss calls model.parts(x), never model(x): compiling the module would compile nothing
        # the loop runs, so compile the function the loss calls.
        model.parts = torch.compile(model.parts, mode=cfg.trainer.compile_mode)
    optimizer = build_optimizer(cfg.optimizer, model)
    steps_per_epoch = math.ceil(len(splits.train) / cfg.trainer.batch_size)
    schedule = build_schedule(cfg.scheduler, optimizer, steps_per_epoch, cfg.trainer.epochs)
    loss_fn = CompositeLoss(cfg.loss, BatchAugment(**cfg.augment))
    return TrainingStep(model, optimizer, schedule, loss_fn, cfg, device)


def channels_last(trainer_cfg, device: torch.device) -> bool:
    """trainer.channels_last=auto: on for CPUs, where oneDNN's convolutions (the transposed ones above all)
    run a training step 1.2-1.5x faster on channels-last tensors; off elsewhere until measured there."""
    if trainer_cfg.channels_last == "auto":
        return device.type == "cpu"
    return bool(trainer_cfg.channels_last)


def triton_convolutions(trainer_cfg, device: torch.device) -> bool:
    """trainer.conv_kernels: the model's stride-1 unpadded convolutions on aesweep.kernels (CUDA only)
    instead of cuDNN; auto = wherever they can run."""
    wanted = trainer_cfg.conv_kernels
    if wanted == "cudnn":
        return False
    if device.type != "cuda":
        if wanted == "triton":
            raise ConfigError("trainer.conv_kernels", "triton", f"auto or cudnn on {device.type}: the Triton kernels "
                              "run on CUDA GPUs only")
        return False
    try:
        import triton  # noqa: F401  (ships with torch's CUDA wheels for Linux)
    except ImportError:
        if wanted == "triton":
            raise ConfigError("trainer.conv_kernels", "triton", "auto or cudnn: Triton is not installed") from None
        return False
    return True


def native_bf16_cpu() -> bool:
    """Whether this CPU computes in bf16 natively (AVX512-BF16 or AMX), as oneDNN sees it."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def amp_enabled(cfg: DictConfig, device: torch.device) -> bool:
    """trainer.amp: bf16 autocast of the training step (the bottleneck's logits stay float32).

    auto = on for CPUs that compute in bf16 natively (AVX512-BF16, AMX) when the objective is
    reconstruction alone: there it made the seed model's epochs ~1.4x faster with the same
    val.mapped_acc over seeds. With clustering terms it stays off: over 10 seeds of an IIC recipe bf16
    scored 1.9 points lower on average (within the seeds' spread, but not shown harmless). Off on CUDA,
    where it gained nothing on the H100. Asking for it where bf16 would be emulated (older CPUs: several
    times slower than float32) or is not wired up (mps) is refused. (README, Performance.)
    """
    wanted = cfg.trainer.amp
    if wanted is False:
        return False
    if wanted == "auto":
        return device.type == "cpu" and native_bf16_cpu() and not has_clustering_terms(cfg.loss)
    if not (device.type == "cuda" or (device.type == "cpu" and native_bf16_cpu())):
        why = "it has no native bf16 (AVX512-BF16 or AMX)" if device.type == "cpu" else "bf16 autocast is not used there"
        raise ConfigError("trainer.amp", True, f"auto or false on {device.type}: {why}")
    return True


# Optimizers whose update reads a device-tensor lr inside a captured graph (capturable=True), so a
# per-step lr schedule survives graph replay; any other optimizer is graphed only at a constant lr.
TENSOR_LR_OPTIMIZERS = (torch.optim.Adam, torch.optim.AdamW)


# torch.compile modes that capture CUDA graphs themselves; a graph cannot be captured inside our own.
# The others (default, max-autotune-no-cudagraphs) produce fused kernels that the whole-step graph replays.
COMPILE_MODES_WITH_OWN_GRAPHS = ("reduce-overhead", "max-autotune")


def cuda_graph_blocker(cfg: DictConfig, optimizer: torch.optim.Optimizer, device: torch.device) -> str | None:
    """Why the training step cannot be captured as a CUDA graph here, or None if it can."""
    if device.type != "cuda":
        return f"device is {device.type}: CUDA graphs need device=cuda"
    if cfg.trainer.compile and cfg.trainer.compile_mode in COMPILE_MODES_WITH_OWN_GRAPHS:
        return (f"trainer.compile_mode={cfg.trainer.compile_mode} replays torch.compile's own CUDA graphs "
                "(compile_mode=default or max-autotune-no-cudagraphs go inside the whole-step graph)")
    constant_lr = cfg.scheduler.name == "none" and not cfg.scheduler.warmup_epochs
    if not constant_lr and not isinstance(optimizer, TENSOR_LR_OPTIMIZERS):
        return (f"a per-step lr schedule with {type(optimizer).__name__} (only Adam and AdamW read their lr "
                "from the device; use scheduler=none without warm-up, or optimizer=adam|adamw)")
    return None


class TrainingStep:
    """One optimisation step (forward, loss, backward, clip, optimizer, lr schedule) on one batch.

    On CUDA (trainer.cuda_graph=auto) the step is captured once as a CUDA graph and then replayed with
    a single launch: the seed model at batch 128 is launch-bound on a GPU (3.2 ms per eager step on an
    H100, for 2.4 GFLOP), and replay made its epochs 3.8x faster there. What a replay needs
    to see change lives in device tensors the graph reads: the batch (copied into `static_x`), the
    clustering-term ramp and, for Adam/AdamW, the lr. Steps of another batch size (the epoch's last,
    partial batch) run eagerly on the same parameters, gradients and optimizer state.
    """

    WARMUP_STEPS = 3  # eager steps on a side stream before capture: cuDNN/cuBLAS choose kernels, optimizer state exists

    def __init__(self, model: Autoencoder, optimizer: torch.optim.Optimizer, schedule, loss_fn: CompositeLoss,
                 cfg: DictConfig, device: torch.device):
        self.model, self.optimizer, self.schedule, self.loss_fn = model, optimizer, schedule, loss_fn
        self.cfg, self.device = cfg, device
        self.amp = amp_enabled(cfg, device)
        self.ramp = torch.ones((), device=device)
        self.sums: dict[str, torch.Tensor] = {}  # running sum of each loss term over the epoch, on the device
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static_x: torch.Tensor | None = None
        self.warm_steps = 0
        blocker = cuda_graph_blocker(cfg, optimizer, device)
        wanted = cfg.trainer.cuda_graph
        if wanted is True and blocker:
            raise ConfigError("trainer.cuda_graph", True, f"auto or false here: {blocker}")
        self.graphed = wanted is True or (wanted == "auto" and blocker is None)
        if wanted == "auto" and blocker and device.type == "cuda":
            log.info("training step runs eagerly, not as a CUDA graph: %s", blocker)
        if self.graphed:
            self.make_optimizer_capturable()

    def make_optimizer_capturable(self) -> None:
        """Step count (and, for Adam/AdamW, the lr) on the device, so the optimizer step needs no host sync."""
        for group in self.optimizer.param_groups:
            if isinstance(self.optimizer, TENSOR_LR_OPTIMIZERS):
                group["capturable"] = True
                group["lr"] = torch.tensor(float(group["lr"]), device=self.device)  # the schedule fill_()s it
            elif "capturable" in group:
                group["capturable"] = True

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def start_epoch(self, epoch: int) -> None:
        self.ramp.fill_(self.loss_fn.ramp(epoch))
        for total in self.sums.values():
            total.zero_()

    def epoch_means(self, steps: int) -> dict[str, float]:
        return {name: float(total) / steps for name, total in self.sums.items()}

    def __call__(self, x: torch.Tensor) -> None:
        if not self.graphed or x.shape[0] != self.cfg.trainer.batch_size:
            # after a capture, gradients are zeroed in place: the graph reads and writes those same tensors
            self.optimizer.zero_grad(set_to_none=self.graph is None)
            self._forward_backward_update(x)
        elif self.graph is not None:
            self.static_x.copy_(x)
            self.graph.replay()
        elif self.warm_steps < self.WARMUP_STEPS:
            self._side_stream_step(x)
        else:
            self._capture(x)
        self.schedule.step()

    def _forward_backward_update(self, x: torch.Tensor) -> None:
        # no cast cache inside a CUDA graph: the cached bf16 weights would be the capture's, not the updated ones
        autocast = (torch.autocast(self.device.type, dtype=torch.bfloat16, cache_enabled=not self.graphed)
                    if self.amp else nullcontext())
        with autocast:
            loss, terms = self.loss_fn(self.model, x, self.ramp)
        loss.backward()
        if self.cfg.trainer.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.trainer.grad_clip)
        self.optimizer.step()
        # accumulate on the device: one host sync per epoch, not per step (in-place, so a graph can do it)
        for name, value in {"loss": loss, **{f"loss.{k}": v for k, v in terms.items()}}.items():
            if name not in self.sums:
                self.sums[name] = torch.zeros((), device=self.device)
            self.sums[name].add_(value.detach().float())

    def _side_stream_step(self, x: torch.Tensor) -> None:
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            self.optimizer.zero_grad(set_to_none=True)
            self._forward_backward_update(x)
        torch.cuda.current_stream(self.device).wait_stream(side)
        self.warm_steps += 1

    def _capture(self, x: torch.Tensor) -> None:
        self.static_x = x.clone()
        self.optimizer.zero_grad(set_to_none=True)  # gradients are then allocated inside the graph's memory
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self._forward_backward_update(self.static_x)
        self.graph.replay()  # capturing records the step without running it: run it on this batch now


def train_one_epoch(step: TrainingStep, splits: MNISTSplits, cfg: DictConfig, epoch: int, generator,
                    progress) -> dict[str, float]:
    """One pass over the training split in shuffled batches; returns the mean of each loss term."""
    train = splits.train
    device = train.images.device
    order = torch.randperm(len(train), generator=generator).to(device)
    batches = range(0, len(train), cfg.trainer.batch_size)
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
    generator = torch.Generator().manual_seed(cfg.seed)
    progress = _progress(cfg, multirun)
    log.info("%s on %s: %d parameters, %d train / %d val / %d test images",
             type(model).__name__, device, params, len(splits.train), len(splits.val), len(splits.test))

    history: list[dict] = []
    status, reason = "completed", None
    for epoch in range(cfg.trainer.epochs):
        losses = train_one_epoch(step, splits, cfg, epoch, generator, progress)
        if not all(math.isfinite(v) for v in losses.values()):
            status, reason = "diverged", f"loss became {losses['loss']} in epoch {epoch + 1}"
            log.warning("run diverged: %s", reason)
            break
        scorer.fit(model)
        val, _ = scorer.score(model, splits.val)
        row = {"epoch": epoch + 1, **losses, "lr": step.lr,
               **{f"val.{k}": v for k, v in val.items()}, "seconds": time.perf_counter() - started}
        history.append(row)
        write_csv_atomic(out_dir / "history.csv", pd.DataFrame(history))
        log.info("epoch %d/%d loss %.4f val.mapped_acc %.4f val.nmi %.3f clusters %d (%.1fs)", epoch + 1,
                 cfg.trainer.epochs, losses["loss"], val["mapped_acc"], val["nmi"], val["clusters_used"], row["seconds"])
        val_metrics = {k: v for k, v in row.items() if k.startswith("val.")}
        if reporter is not None and reporter.report(epoch + 1, val_metrics, last=epoch + 1 == cfg.trainer.epochs):
            status, reason = "pruned", f"pruned after epoch {epoch + 1}"
            log.info("trial %s", reason)
            break

    result = {"status": status, "reason": reason, "val": None, "test": None, "fit": None,
              "confusion": None, "mapping": None}
    if status == "pruned":
        # Nobody selects or reports a pruned trial: its last validation scores say why it stopped, and
        # skipping the refit, test scoring, pictures and weights is part of what pruning saves.
        result["val"] = {k.removeprefix("val."): v for k, v in history[-1].items() if k.startswith("val.")}
    elif status == "completed":
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
    from PIL import Image

    from aesweep.plots import save_confusion_png

    save_confusion_png(confusion, out_dir / "confusion.png", title="test split: bottleneck cluster x digit")
    with torch.no_grad():
        model.eval()
        x = test.batch(torch.arange(16, device=test.images.device))
        recon = model(x).float()
        model.train()
    tmp = out_dir / ".reconstructions.tmp.png"
    Image.fromarray(image_grid(torch.cat([x, recon]).cpu(), columns=16)).save(tmp, format="PNG")
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
