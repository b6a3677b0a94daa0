"""The rows of outputs/reference/full-data-cpu/README.md's tables, from each folder's metrics_seed<s>.json (and
history_seed<s>.csv where there is one): test mapped accuracy, NMI, reconstruction MSE, validation accuracy, the
test sevens the mapping sends elsewhere, fit.cluster_entropy after the first epoch (from history.csv) and the last
(from the fit confusion matrix); with trainer.n_init, each
initialisation's entropy when the choice was made (the chosen one starred). Accuracies are recomputed from the
confusion matrices and checked against the recorded ones.
  python scripts/full-data-table.py outputs/reference/full-data-cpu/epochs-10-n-init-5
"""

import json
import statistics
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import entropy

SEVEN = 7

for folder in map(Path, sys.argv[1:]):
    print(f"\n{folder.name}\n")
    print("| seed | test mapped_acc | test NMI | test recon MSE | val mapped_acc | test sevens elsewhere "
          "| fit.cluster_entropy, epoch 1 | ... last epoch | initialisations: fit.cluster_entropy at the choice |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    accuracies = []
    for path in sorted(folder.glob("metrics_seed*.json")):
        record = json.loads(path.read_text())
        seed = record["seed"]
        confusion = np.array(record["confusion"]["test"])  # cluster x class
        mapping = np.array(record["mapping"])
        correct = sum(confusion[c, mapping[c]] for c in range(len(mapping)) if mapping[c] >= 0)
        accuracy = correct / confusion.sum()
        assert abs(accuracy - record["test"]["mapped_acc"]) < 1e-9, path
        accuracies.append(accuracy * 100)
        sevens_elsewhere = int(confusion[mapping != SEVEN, SEVEN].sum())
        last = entropy(np.array(record["confusion"]["fit"]).sum(axis=1))  # the images in each cluster
        history = folder / f"history_seed{seed}.csv"
        first = f"{pd.read_csv(history)['fit.cluster_entropy'][0]:.5f}" if history.exists() else ""
        inits = ", ".join(f"{i['fit_cluster_entropy']:.5f}{'*' if i['chosen'] else ''}"
                          for i in record.get("inits") or [])
        print(f"| {seed} | {accuracy:.2%} | {record['test']['nmi']:.3f} | {record['test']['recon_mse']:.4f} "
              f"| {record['val']['mapped_acc']:.2%} | {sevens_elsewhere} | {first} | {last:.5f} | {inits} |")
    if len(accuracies) > 1:
        print(f"| **mean +- sd** | **{statistics.mean(accuracies):.2f}% +- {statistics.stdev(accuracies):.2f}** "
              f"(worst {min(accuracies):.2f}%) | | | | | | | |")
