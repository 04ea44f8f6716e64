"""The k-MTR network (k-space encoder, trunk, heads), its image-domain twin and weight I/O."""

from kmtr_stream.model.config import ModelConfig
from kmtr_stream.model.io import LoadedModel, export_weights, load_model, read_weights
from kmtr_stream.model.networks import ImageModel, KMTRModel, SliceModel
from kmtr_stream.model.predictor import SubjectPredictor, load_subject_predictor

__all__ = [
    "ImageModel",
    "KMTRModel",
    "LoadedModel",
    "ModelConfig",
    "SliceModel",
    "SubjectPredictor",
    "export_weights",
    "load_model",
    "load_subject_predictor",
    "read_weights",
]
