"""Training of k-MTR and its image-domain baselines on the simulated cohort."""

from kmtr_stream.training.config import TrainConfig, load_config, parse_config
from kmtr_stream.training.loop import Trainer, train

__all__ = ["TrainConfig", "Trainer", "load_config", "parse_config", "train"]
