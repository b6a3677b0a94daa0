"""The test sevens a trained run puts in another digit's cluster, beside sevens it keeps: one row of images per run.

    .venv/bin/python scripts/stray-sevens.py OUT.png RUN_DIR [RUN_DIR ...]

Each RUN_DIR is a run folder with model.pt, metrics.json (its cluster -> digit mapping, fitted on the training
split) and .hydra/config.yaml (the model to build).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from hydra.utils import instantiate  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from aesweep.data import raw_dir, read_idx  # noqa: E402

PER_ROW = 20


def stray_sevens(run_dir: Path, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict]:
    config = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    model = instantiate(config.model)
    model.load_state_dict(torch.load(run_dir / "model.pt", map_location="cpu"))
    model.eval()
    with torch.no_grad():
        clusters = torch.cat([model.encoder(images[i:i + 1000]).argmax(dim=1) for i in range(0, len(images), 1000)])
    metrics = json.loads((run_dir / "metrics.json").read_text())
    digit = torch.tensor(metrics["mapping"])[clusters]
    sevens = labels == 7
    stray, kept = (sevens & (digit != 7)).nonzero().flatten(), (sevens & (digit == 7)).nonzero().flatten()
    where = torch.bincount(digit[stray], minlength=10).tolist()
    return stray, kept, {"seed": metrics["seed"], "acc": metrics["test"]["mapped_acc"], "where": where}


def main(out: str, run_dirs: list[str]) -> None:
    root = raw_dir("data")
    images = read_idx(root / "t10k-images-idx3-ubyte").float().div(255).unsqueeze(1)
    labels = read_idx(root / "t10k-labels-idx1-ubyte").long()
    rows = []
    for run_dir in run_dirs:
        stray, kept, info = stray_sevens(Path(run_dir), images, labels)
        into = ", ".join(f"{n} as {d}" for d, n in enumerate(info["where"]) if n)
        rows.append((f"seed {info['seed']}, test {info['acc'] * 100:.1f}%: {len(stray)} of {int((labels == 7).sum())} "
                     f"sevens elsewhere ({into or 'none'})", images[stray[:PER_ROW]]))
    rows.append(("sevens the last run keeps with the sevens", images[kept[:PER_ROW]]))
    fig, axes = plt.subplots(len(rows), PER_ROW, figsize=(PER_ROW * 0.6, len(rows) * 0.85))
    for axes_row, (title, row_images) in zip(axes, rows):
        for column, ax in enumerate(axes_row):
            ax.axis("off")
            if column < len(row_images):
                ax.imshow(row_images[column, 0], cmap="gray_r")
        axes_row[0].set_title(title, fontsize=8, loc="left")
    fig.subplots_adjust(left=0.01, right=0.99, top=0.93, bottom=0.01, hspace=0.7)
    fig.savefig(out, dpi=80)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
