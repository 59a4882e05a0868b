"""Readers for the public diabetic-retinopathy datasets and for our synthetic cohorts.

Every reader is a lazy, indexable sequence of :class:`~drgnet.data.sample.Sample`: building one only reads
label files and lists folders; ``reader[i]`` loads the photograph (and its masks) from disk. ``reader.grades``
and ``reader.names`` are available without loading any image, e.g. for :func:`split_indices`.

Typical use::

    reader = open_dataset("/data/IDRiD/A. Segmentation", split="train")   # layout detected
    sample = reader[0]                                                     # Sample with (4, H, W) masks
    train, val, test = split_indices(open_dataset("/data/FGADR").grades)

Layouts (``LAYOUTS``): ``idrid-seg``, ``idrid-grading``, ``fgadr``, ``ddr-grading``, ``ddr-seg``, ``csv``
(EyePACS / APTOS style), ``synthetic`` (written by ``drgnet synth``) and ``folder`` (unlabelled photographs).

Masks follow one rule everywhere: when a source annotated a lesion for an image but has no mask file for it,
the lesion is absent from that image (known, all zeros). A lesion is unknown only when the source never
annotates it, or its whole mask folder is missing (a warning says so).

Modules: ``_base`` (DatasetReader), ``idrid``, ``fgadr``, ``ddr``, ``table`` (csv), ``synthetic``, ``folder``,
``registry`` (LAYOUTS, detect_layout, open_dataset), ``splits`` (split_indices), ``_io`` (file helpers).
"""

from __future__ import annotations

from drgnet.data.readers._base import DatasetReader
from drgnet.data.readers._io import read_mask
from drgnet.data.readers.ddr import DDRGradingReader, DDRSegmentationReader
from drgnet.data.readers.fgadr import FGADRReader
from drgnet.data.readers.folder import ImageFolderReader
from drgnet.data.readers.idrid import IDRiDGradingReader, IDRiDSegmentationReader
from drgnet.data.readers.registry import LAYOUTS, detect_layout, open_dataset
from drgnet.data.readers.splits import split_indices
from drgnet.data.readers.synthetic import SyntheticReader
from drgnet.data.readers.table import CSVReader

__all__ = [
    "LAYOUTS",
    "CSVReader",
    "DDRGradingReader",
    "DDRSegmentationReader",
    "DatasetReader",
    "FGADRReader",
    "IDRiDGradingReader",
    "IDRiDSegmentationReader",
    "ImageFolderReader",
    "SyntheticReader",
    "detect_layout",
    "open_dataset",
    "read_mask",
    "split_indices",
]
