"""aesweep: Hydra + Optuna sweeps for MNIST autoencoders whose bottleneck sorts the digits without labels."""

from omegaconf import OmegaConf

# conf/config.yaml names a multirun's folder after its sweep file, `${aesweep.or:${hydra.runtime.choices.sweep},
# ${hydra.job.name}}`: Hydra's choice is null in a plain `python train.py -m seed=0,1`, which OmegaConf would
# write as "None"; the job name is also the study's name then.
if not OmegaConf.has_resolver("aesweep.or"):
    OmegaConf.register_new_resolver("aesweep.or", lambda value, fallback: fallback if value is None else value)
