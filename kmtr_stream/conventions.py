"""Project-wide conventions: ACDC labels, phenotype names and units, disease classes."""

from __future__ import annotations

from enum import IntEnum


class Label(IntEnum):
    """ACDC label values of segmentation maps."""

    BACKGROUND = 0
    RV_CAVITY = 1
    LV_MYOCARDIUM = 2
    LV_CAVITY = 3


#: Phenotype names in their fixed order, with units.
PHENOTYPES: tuple[str, ...] = (
    "LVEDV", "LVESV", "LVSV", "LVEF", "LVM", "RVEDV", "RVESV", "RVSV", "RVEF",
)
PHENOTYPE_UNITS: dict[str, str] = {
    "LVEDV": "mL", "LVESV": "mL", "LVSV": "mL", "LVEF": "%", "LVM": "g",
    "RVEDV": "mL", "RVESV": "mL", "RVSV": "mL", "RVEF": "%",
}

#: Disease classes in their fixed order (ACDC).
CLASSES: tuple[str, ...] = ("NOR", "DCM", "HCM", "MINF", "ARV")

#: Myocardial density used for LV mass, g/mL.
MYOCARDIAL_DENSITY_G_PER_ML = 1.05

#: Simulator seed of every test cohort (evaluate, robustness): fixed, whatever data
#: seed the weights were trained on, so that all weights meet the same test subjects.
TEST_SEED = 0
