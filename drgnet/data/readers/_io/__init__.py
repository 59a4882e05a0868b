"""File helpers shared by the dataset readers, one module per kind of file; readers use them as ``_io.find_dir``.

- :mod:`~drgnet.data.readers._io.folders`: folders and files under the names a release uses; listing photographs.
- :mod:`~drgnet.data.readers._io.tables`: label tables, their columns and grades.
- :mod:`~drgnet.data.readers._io.masks`: lesion masks read as boolean arrays.
"""

from drgnet.data.readers._io.folders import (
    IMAGE_EXTENSIONS,
    FileIndex,
    find_dir,
    find_file,
    has_images,
    list_images,
    strip_image_extension,
)
from drgnet.data.readers._io.masks import MASK_EXTENSIONS, read_mask
from drgnet.data.readers._io.tables import parse_grade, pick_column, read_rows, read_table

__all__ = [
    "IMAGE_EXTENSIONS",
    "MASK_EXTENSIONS",
    "FileIndex",
    "find_dir",
    "find_file",
    "has_images",
    "list_images",
    "parse_grade",
    "pick_column",
    "read_mask",
    "read_rows",
    "read_table",
    "strip_image_extension",
]
