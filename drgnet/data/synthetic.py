"""Synthetic colour fundus photographs with ICDR grades and pixel-exact lesion masks.

No real diabetic retinopathy data can be downloaded where this project is built and tested, so this module is
its stand-in: it paints a plausible retina (field of view, vignetting, choroidal texture, optic disc and cup,
macula, a branching artery / vein tree), adds the lesions an ICDR grade implies, and photographs it through a
named camera style. The same ``(seed, index)`` always gives the same eye and lesions; the style changes only
the camera, so one eye can be seen through several "clinics".

Cohorts are written in the IDRiD layout that ``drgnet.data.readers`` reads::

    OUT/1. Original Images/SYN_00000.jpg
    OUT/2. All Segmentation Groundtruths/1. Microaneurysms/SYN_00000_MA.png   (0/255, one channel)
    OUT/2. All Segmentation Groundtruths/2. Haemorrhages/SYN_00000_HE.png
    OUT/2. All Segmentation Groundtruths/3. Hard Exudates/SYN_00000_EX.png
    OUT/2. All Segmentation Groundtruths/4. Soft Exudates/SYN_00000_SE.png
    OUT/grades.csv      Image name,Retinopathy grade,style,seed,findings
    OUT/manifest.json
"""

from __future__ import annotations

from drgnet.data._synth_anatomy import Raster
from drgnet.data._synth_camera import STYLES, CameraStyle
from drgnet.data._synth_cohort import (
    DEFAULT_GRADE_WEIGHTS,
    GENERATOR,
    GRADES_CSV,
    GRADES_CSV_HEADER,
    IMAGE_DIR,
    LESION_DIRS,
    MANIFEST,
    MASK_ROOT,
    CohortInfo,
    generate_cohort,
    mask_path,
)
from drgnet.data._synth_fundus import (
    GENERATOR_REVISION,
    GENERATORS,
    IMAGE_PREFIX,
    V1_DIR,
    SyntheticFundus,
    generate_fundus,
    image_name,
    revision_of,
)
from drgnet.data._synth_pathology import FINDINGS
from drgnet.data._synth_preview import overlay_masks, write_preview

__all__ = [
    "DEFAULT_GRADE_WEIGHTS",
    "FINDINGS",
    "GENERATOR",
    "GENERATORS",
    "GENERATOR_REVISION",
    "GRADES_CSV",
    "GRADES_CSV_HEADER",
    "IMAGE_DIR",
    "IMAGE_PREFIX",
    "LESION_DIRS",
    "MANIFEST",
    "MASK_ROOT",
    "STYLES",
    "V1_DIR",
    "CameraStyle",
    "CohortInfo",
    "Raster",
    "SyntheticFundus",
    "generate_cohort",
    "generate_fundus",
    "image_name",
    "mask_path",
    "overlay_masks",
    "revision_of",
    "write_preview",
]
