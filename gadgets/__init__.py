"""Built-in gadgets. Importing this package registers every gadget type.

Add one line here per gadget module.
"""

from importlib import import_module

_MODULES: list[str] = [
    "passthrough",
    "recorder",
    "noise_prewhitening",
    "remove_oversampling",
    "coil_compression",
    "slice_buffer",
    "model_grid",
    "subject_aggregation",
    "kmtr_inference",
    "recon_inference",
]

for _name in _MODULES:
    import_module(f"gadgets.{_name}")
