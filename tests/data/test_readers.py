"""Dataset readers, each on a tiny fixture written in the real layout of its dataset."""

from __future__ import annotations

import json
import re
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from drgnet.data import readers
from drgnet.data.readers import (
    LAYOUTS,
    CSVReader,
    DDRGradingReader,
    DDRSegmentationReader,
    FGADRReader,
    IDRiDGradingReader,
    IDRiDSegmentationReader,
    SyntheticReader,
    detect_layout,
    open_dataset,
    read_mask,
    split_indices,
)

H, W = 40, 48  # every fixture photograph; deliberately not square so a transposed mask is caught


# ----------------------------------------------------------------------------------------- writers


def _photo(path: Path, h: int = H, w: int = W) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(zlib.crc32(path.name.encode()))
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def _mask(path: Path, pixels: list[tuple[int, int]], *, h: int = H, w: int = W, mode: str = "L") -> Path:
    """A mask with lesion at ``pixels`` (row, col): grey 255, or pure red for an RGB mask (IDRiD style)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.zeros((h, w, 3) if mode == "RGB" else (h, w), np.uint8)
    for r, c in pixels:
        if mode == "RGB":
            arr[r, c] = (255, 0, 0)
        else:
            arr[r, c] = 255
    Image.fromarray(arr).convert(mode).save(path)
    return path


def _text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _idrid_seg(root: Path) -> Path:
    """IDRiD part A: two training images, one test image; IDRiD_01 has no soft-exudate mask."""
    part = root / "A. Segmentation"
    for name in ("IDRiD_01", "IDRiD_02"):
        _photo(part / "1. Original Images" / "a. Training Set" / f"{name}.jpg")
    _photo(part / "1. Original Images" / "b. Testing Set" / "IDRiD_55.jpg")
    truth = part / "2. All Segmentation Groundtruths" / "a. Training Set"
    _mask(truth / "1. Microaneurysms" / "IDRiD_01_MA.tif", [(5, 6)], mode="RGB")
    _mask(truth / "2. Haemorrhages" / "IDRiD_01_HE.tif", [(10, 11), (10, 12)], mode="RGB")
    _mask(truth / "3. Hard Exudates" / "IDRiD_01_EX.tif", [(20, 30)], mode="RGB")
    (truth / "4. Soft Exudates").mkdir(parents=True)
    _mask(truth / "1. Microaneurysms" / "IDRiD_02_MA.tif", [(1, 2)], mode="RGB")
    _mask(truth / "4. Soft Exudates" / "IDRiD_02_SE.tif", [(3, 4)], mode="RGB")
    _mask(truth / "5. Optic Disc" / "IDRiD_01_OD.tif", [(0, 0)], mode="RGB")
    test_truth = part / "2. All Segmentation Groundtruths" / "b. Testing Set"
    for folder, code in (("1. Microaneurysms", "MA"), ("2. Haemorrhages", "HE")):
        _mask(test_truth / folder / f"IDRiD_55_{code}.tif", [(7, 7)], mode="RGB")
    (test_truth / "3. Hard Exudates").mkdir()
    (test_truth / "4. Soft Exudates").mkdir()
    return root


def _idrid_grading(root: Path) -> Path:
    part = root / "B. Disease Grading"
    for i in (1, 2, 3):
        _photo(part / "1. Original Images" / "a. Training Set" / f"IDRiD_{i:03d}.jpg")
    _photo(part / "1. Original Images" / "b. Testing Set" / "IDRiD_001.jpg")
    # As released: a trailing space in the last header and a run of empty trailing columns.
    _text(
        part / "2. Groundtruths" / "a. IDRiD_Disease Grading_Training Labels.csv",
        "Image name,Retinopathy grade,Risk of macular edema ,,,\n"
        "IDRiD_001,3,2,,,\nIDRiD_002,0,0,,,\nIDRiD_003,4,1,,,\n,,,,,\n",
    )
    _text(
        part / "2. Groundtruths" / "b. IDRiD_Disease Grading_Testing Labels.csv",
        "Image name,Retinopathy grade,Risk of macular edema \nIDRiD_001,1,0\n",
    )
    return root


def _fgadr(root: Path) -> Path:
    seg = root / "Seg-set"
    for name in ("0001_2", "0002_1", "0003_4"):
        _photo(seg / "Original_Images" / f"{name}.png")
        for folder in ("Microaneurysms_Masks", "Hemohedge_Masks", "HardExudate_Masks", "SoftExudate_Masks"):
            _mask(seg / folder / f"{name}.png", [])
    _mask(seg / "Hemohedge_Masks" / "0001_2.png", [(12, 13)])
    _mask(seg / "SoftExudate_Masks" / "0003_4.png", [(30, 40)])
    _mask(seg / "IRMA_Masks" / "0003_4.png", [(1, 1)])
    (seg / "Neovascularization_Masks").mkdir()
    _text(seg / "DR_Seg_Grading_Label.csv", "0001_2.png,2\n0002_1.png,0\n0003_4.png,4\n")
    return root


def _ddr(root: Path, *, seg_label: str = "label", valid: str = "valid") -> Path:
    grading = root / "DR_grading"
    for split, names in (
        ("train", ["007-0001-000", "007-0002-000", "007-0003-000"]),
        (valid, ["007-0009-000"]),
    ):
        for name in names:
            _photo(grading / split / f"{name}.jpg")
    _text(grading / "train.txt", "007-0001-000.jpg 2\n007-0002-000.jpg 5\n007-0003-000.jpg 0\n")
    _text(grading / f"{valid}.txt", "007-0009-000.jpg 1\n")
    seg = root / "lesion_segmentation"
    for split, name in (("train", "007-0001-000"), (valid, "007-0009-000")):
        _photo(seg / split / "image" / f"{name}.jpg")
        for code in ("EX", "HE", "MA", "SE"):
            _mask(seg / split / seg_label / code / f"{name}.tif", [])
    _mask(seg / "train" / seg_label / "EX" / "007-0001-000.tif", [(8, 9)], mode="1")
    _mask(seg / valid / seg_label / "MA" / "007-0009-000.tif", [(2, 3)])
    return root


def _aptos(root: Path) -> Path:
    for name in ("000c1434d8d7", "001639a390f0", "0024cdab0c1e"):
        _photo(root / "train_images" / f"{name}.png")
    _text(root / "train.csv", "id_code,diagnosis\n000c1434d8d7,2\n001639a390f0,4\n0024cdab0c1e,1\n")
    _photo(root / "test_images" / "0005cfc8afb6.png")
    _text(root / "test.csv", "id_code\n0005cfc8afb6\n")
    return root


def _synthetic(root: Path, *, manifest: bool = True) -> Path:
    masks = root / "2. All Segmentation Groundtruths"
    for i in range(3):
        name = f"SYN_{i:05d}"
        _photo(root / "1. Original Images" / f"{name}.jpg")
        for folder, code in (
            ("1. Microaneurysms", "MA"),
            ("2. Haemorrhages", "HE"),
            ("3. Hard Exudates", "EX"),
            ("4. Soft Exudates", "SE"),
        ):
            _mask(masks / folder / f"{name}_{code}.png", [])
    _mask(masks / "1. Microaneurysms" / "SYN_00001_MA.png", [(4, 5), (6, 7)])
    _text(
        root / "grades.csv",
        "Image name,Retinopathy grade,style,seed,findings\n"
        "SYN_00000,0,clinic_a,11,none\n"
        "SYN_00001,1,clinic_a,12,MA x2\n"
        "SYN_00002,3,clinic_a,13,HE in 4 quadrants\n",
    )
    if manifest:
        _text(root / "manifest.json", json.dumps({"generator": "drgnet.synthetic", "n": 3}))
    return root


# ----------------------------------------------------------------------------------------- IDRiD


def test_idrid_segmentation_reads_masks_into_their_lesion_channels(tmp_path):
    reader = IDRiDSegmentationReader(_idrid_seg(tmp_path))
    assert len(reader) == 2
    assert reader.names == ["IDRiD_01", "IDRiD_02"]
    assert reader.grades == [None, None]
    assert reader.source == "idrid"
    s = reader[0]
    assert s.image.shape == (H, W, 3) and s.image.dtype == np.uint8
    assert s.masks.shape == (4, H, W)
    assert s.lesion_known == (True, True, True, True)
    assert s.masks[0].sum() == 1 and s.masks[0, 5, 6] == 1  # MA
    assert s.masks[1].sum() == 2 and s.masks[1, 10, 11] == s.masks[1, 10, 12] == 1  # HE
    assert s.masks[2].sum() == 1 and s.masks[2, 20, 30] == 1  # EX
    assert s.masks[3].sum() == 0  # SE: no file, so absent (IDRiD annotated every lesion)
    assert s.grade is None and s.source == "idrid" and s.meta["split"] == "train"
    assert s.path.name == "IDRiD_01.jpg"
    s2 = reader[-1]
    assert s2.name == "IDRiD_02" and s2.masks[3, 3, 4] == 1 and s2.masks[1].sum() == 0


def test_idrid_segmentation_accepts_the_part_folder_and_the_test_split(tmp_path):
    _idrid_seg(tmp_path)
    reader = open_dataset(tmp_path / "A. Segmentation", split="test")
    assert isinstance(reader, IDRiDSegmentationReader)
    assert reader.names == ["IDRiD_55"]
    s = reader[0]
    assert s.masks[0, 7, 7] == 1 and s.masks[1, 7, 7] == 1 and s.masks[2:].sum() == 0
    assert s.lesion_known == (True,) * 4


def test_idrid_segmentation_without_a_lesion_folder_marks_that_lesion_unknown(tmp_path):
    _idrid_seg(tmp_path)
    truth = tmp_path / "A. Segmentation" / "2. All Segmentation Groundtruths" / "a. Training Set"
    for f in (truth / "4. Soft Exudates").iterdir():
        f.unlink()
    (truth / "4. Soft Exudates").rmdir()
    with pytest.warns(UserWarning, match="SE"):
        reader = IDRiDSegmentationReader(tmp_path)
    assert reader[1].lesion_known == (True, True, True, False)


def test_idrid_grading_reads_grades_and_macular_edema(tmp_path):
    _idrid_grading(tmp_path)
    reader = IDRiDGradingReader(tmp_path)
    assert reader.names == ["IDRiD_001", "IDRiD_002", "IDRiD_003"]
    assert reader.grades == [3, 0, 4]
    s = reader[2]
    assert s.grade == 4 and s.masks is None and s.lesion_known == (False,) * 4
    assert s.meta == {"split": "train", "macular_edema_risk": 1}
    test = open_dataset(tmp_path / "B. Disease Grading", split="test")
    assert test.grades == [1] and test.names == ["IDRiD_001"]


def test_idrid_grading_rejects_a_non_integer_grade_naming_file_and_line(tmp_path):
    _idrid_grading(tmp_path)
    labels = tmp_path / "B. Disease Grading" / "2. Groundtruths" / "a. IDRiD_Disease Grading_Training Labels.csv"
    _text(labels, "Image name,Retinopathy grade\nIDRiD_001,3\nIDRiD_002,moderate\n")
    with pytest.raises(ValueError, match=r"Training Labels\.csv, line 3 \(IDRiD_002\): grade 'moderate'"):
        IDRiDGradingReader(tmp_path)


def test_an_image_listed_but_missing_is_an_error_or_skipped_on_request(tmp_path):
    _idrid_grading(tmp_path)
    (tmp_path / "B. Disease Grading" / "1. Original Images" / "a. Training Set" / "IDRiD_002.jpg").unlink()
    with pytest.raises(ValueError, match=r"line 3: image 'IDRiD_002' not found in .*a\. Training Set"):
        IDRiDGradingReader(tmp_path)
    with pytest.warns(UserWarning, match="skipped 1 rows"):
        reader = IDRiDGradingReader(tmp_path, skip_missing=True)
    assert reader.names == ["IDRiD_001", "IDRiD_003"] and reader.grades == [3, 4]


def test_a_row_listed_twice_is_an_error(tmp_path):
    _idrid_grading(tmp_path)
    labels = tmp_path / "B. Disease Grading" / "2. Groundtruths" / "a. IDRiD_Disease Grading_Training Labels.csv"
    _text(labels, "Image name,Retinopathy grade\nIDRiD_001,3\nIDRiD_001,2\n")
    with pytest.raises(ValueError, match=r"line 2: image 'IDRiD_001' is listed more than once"):
        IDRiDGradingReader(tmp_path)


# ----------------------------------------------------------------------------------------- FGADR


def test_fgadr_reads_grades_masks_and_notes_irma(tmp_path):
    reader = FGADRReader(_fgadr(tmp_path))
    assert reader.names == ["0001_2", "0002_1", "0003_4"]
    assert reader.grades == [2, 0, 4]
    s = reader[0]
    assert s.lesion_known == (True,) * 4
    assert s.masks[1].sum() == 1 and s.masks[1, 12, 13] == 1  # Hemohedge_Masks -> HE
    assert s.masks[[0, 2, 3]].sum() == 0
    last = reader[2]
    assert last.masks[3, 30, 40] == 1 and last.masks.sum() == 1  # SE
    assert Path(last.meta["irma_mask"]).name == "0003_4.png" and "neovascularization_mask" not in last.meta
    assert reader[1].meta == {}


def test_fgadr_has_no_official_split(tmp_path):
    _fgadr(tmp_path)
    with pytest.raises(ValueError, match="no official 'test' split.*split_indices"):
        open_dataset(tmp_path, split="test")
    assert len(open_dataset(tmp_path / "Seg-set", split="all")) == 3


# ----------------------------------------------------------------------------------------- DDR


def test_ddr_grading_skips_ungradable_by_default(tmp_path):
    _ddr(tmp_path)
    reader = DDRGradingReader(tmp_path)
    assert reader.names == ["007-0001-000", "007-0003-000"]
    assert reader.grades == [2, 0]
    assert reader[1].meta == {"split": "train"} and reader[1].path.name == "007-0003-000.jpg"
    everything = DDRGradingReader(tmp_path / "DR_grading", include_ungradable=True)
    assert everything.grades == [2, None, 0]
    assert everything[1].meta["ungradable"] is True


def test_ddr_grading_valid_split_accepts_val_on_disk_and_in_the_call(tmp_path):
    _ddr(tmp_path, valid="val")
    for split in ("valid", "val"):
        reader = DDRGradingReader(tmp_path, split)
        assert reader.split == "valid" and reader.names == ["007-0009-000"] and reader.grades == [1]
    with pytest.raises(ValueError, match="choose one of train, valid, test"):
        DDRGradingReader(tmp_path, "holdout")


def test_ddr_segmentation_reads_tif_masks_and_looks_up_grades(tmp_path):
    _ddr(tmp_path)
    reader = DDRSegmentationReader(tmp_path)
    assert reader.names == ["007-0001-000"]
    assert reader.grades == [2]  # from DR_grading/train.txt
    s = reader[0]
    assert s.lesion_known == (True,) * 4
    assert s.masks[2, 8, 9] == 1 and s.masks.sum() == 1  # EX channel, from a 1-bit TIFF
    assert s.meta["grade_from"].endswith("train.txt")


def test_ddr_segmentation_accepts_segmentation_label_and_val(tmp_path):
    _ddr(tmp_path, seg_label="segmentation label", valid="val")
    reader = open_dataset(tmp_path / "lesion_segmentation", split="valid")
    assert isinstance(reader, DDRSegmentationReader)
    s = reader[0]
    assert s.name == "007-0009-000" and s.masks[0, 2, 3] == 1 and s.masks.sum() == 1
    assert s.grade == 1


# ----------------------------------------------------------------------------------------- CSV


def test_csv_aptos_style_picks_table_and_image_folder(tmp_path):
    _aptos(tmp_path)
    reader = CSVReader(tmp_path)  # two tables: split=None means train.csv
    assert reader.table.name == "train.csv" and reader.images_dir.name == "train_images"
    assert reader.names == ["000c1434d8d7", "001639a390f0", "0024cdab0c1e"]
    assert reader.grades == [2, 4, 1]
    assert reader.source == tmp_path.name.lower()
    assert reader[1].path.suffix == ".png" and reader[1].grade == 4
    test = CSVReader(tmp_path, "test")  # no grade column: grades are None
    assert test.grades == [None] and test.images_dir.name == "test_images"


def test_csv_eyepacs_style_with_extra_columns(tmp_path):
    for name in ("10_left", "10_right"):
        _photo(tmp_path / "train" / f"{name}.jpeg")
    table = _text(tmp_path / "trainLabels.csv", "image,level,camera\n10_left,0,canon\n10_right,3,topcon\n")
    reader = open_dataset(table)
    assert isinstance(reader, CSVReader)
    assert reader.grades == [0, 3] and reader.names == ["10_left", "10_right"]
    assert reader[1].meta == {"camera": "topcon"}


def test_csv_explicit_columns_and_images_dir(tmp_path):
    _photo(tmp_path / "pics" / "a.jpg")
    _photo(tmp_path / "pics" / "b.jpg")
    table = _text(tmp_path / "meta" / "labels.csv", "file,severity,other\na.jpg,1,x\nb.jpg,,y\n")
    with pytest.raises(ValueError, match="no image-id column.*pass id_column="):
        CSVReader(table, images_dir=tmp_path / "pics")
    reader = CSVReader(table, images_dir=tmp_path / "pics", id_column="file", grade_column="severity")
    assert reader.names == ["a", "b"] and reader.grades == [1, None]
    with pytest.raises(ValueError, match="no column 'nope'; the columns are: file, severity, other"):
        CSVReader(table, images_dir=tmp_path / "pics", id_column="nope")


def test_csv_missing_image_names_the_row_and_the_file(tmp_path):
    _aptos(tmp_path)
    _text(tmp_path / "train.csv", "id_code,diagnosis\n000c1434d8d7,2\nffffffffffff,0\n")
    with pytest.raises(ValueError, match=r"train\.csv, line 3: image 'ffffffffffff' not found"):
        CSVReader(tmp_path / "train.csv")
    with pytest.warns(UserWarning, match="skipped 1 rows"):
        assert CSVReader(tmp_path / "train.csv", skip_missing=True).names == ["000c1434d8d7"]


# ----------------------------------------------------------------------------------------- synthetic


def test_synthetic_reads_masks_style_and_extra_columns(tmp_path):
    reader = SyntheticReader(_synthetic(tmp_path))
    assert reader.names == ["SYN_00000", "SYN_00001", "SYN_00002"]
    assert reader.grades == [0, 1, 3]
    assert reader.manifest["generator"] == "drgnet.synthetic"
    s = reader[1]
    assert s.source == "synthetic:clinic_a"
    assert s.meta == {"style": "clinic_a", "seed": 12, "findings": "MA x2"}
    assert s.lesion_known == (True,) * 4
    assert s.masks[0, 4, 5] == s.masks[0, 6, 7] == 1 and s.masks.sum() == 2


# ----------------------------------------------------------------------------------------- detection, errors


@pytest.mark.parametrize(
    "build, sub, layout",
    [
        (_idrid_seg, "", "idrid-seg"),
        (_idrid_seg, "A. Segmentation", "idrid-seg"),
        (_idrid_grading, "", "idrid-grading"),
        (_idrid_grading, "B. Disease Grading", "idrid-grading"),
        (_fgadr, "", "fgadr"),
        (_fgadr, "Seg-set", "fgadr"),
        (_ddr, "DR_grading", "ddr-grading"),
        (_ddr, "lesion_segmentation", "ddr-seg"),
        (_aptos, "", "csv"),
        (_aptos, "train.csv", "csv"),
        (_synthetic, "", "synthetic"),
    ],
)
def test_auto_detection_picks_each_layout(tmp_path, build, sub, layout):
    build(tmp_path)
    assert detect_layout(tmp_path / sub) == layout
    assert open_dataset(tmp_path / sub).layout == layout


def test_synthetic_is_detected_without_its_manifest(tmp_path):
    _synthetic(tmp_path, manifest=False)
    assert detect_layout(tmp_path) == "synthetic"


@pytest.mark.parametrize("build, both", [(_ddr, "ddr-grading, ddr-seg"), (_idrid_seg, None)])
def test_a_root_holding_two_datasets_asks_which(tmp_path, build, both):
    build(tmp_path)
    if both is None:  # full IDRiD: parts A and B side by side
        _idrid_grading(tmp_path)
        both = "idrid-seg, idrid-grading"
    with pytest.raises(ValueError, match=f"several datasets \\({both}\\); pass layout="):
        detect_layout(tmp_path)
    assert len(open_dataset(tmp_path, "idrid-grading" if "idrid" in both else "ddr-grading")) > 0


def test_detection_failure_lists_every_layout_and_what_it_expects(tmp_path):
    (tmp_path / "notes.txt").write_text("nothing here")
    with pytest.raises(ValueError, match="cannot tell which dataset layout") as err:
        detect_layout(tmp_path)
    message = str(err.value)
    for name in LAYOUTS:
        assert f"  {name}: " in message
    assert "Hemohedge_Masks" in message and "A. Segmentation/1. Original Images/a. Training Set" in message


@pytest.mark.parametrize(
    "cls, expected",
    [
        (
            IDRiDSegmentationReader,
            "not an IDRiD segmentation folder: "
            "expected 'A. Segmentation/1. Original Images/a. Training Set' with images",
        ),
        (IDRiDGradingReader, "expected 'B. Disease Grading/1. Original Images/a. Training Set'"),
        (FGADRReader, "not an FGADR Seg-set folder: expected 'Seg-set/Original_Images' with images"),
        (DDRGradingReader, "expected 'DR_grading/train.txt'"),
        (DDRSegmentationReader, "expected 'lesion_segmentation/train/image' with images"),
        (SyntheticReader, "expected '1. Original Images' with images"),
    ],
)
def test_a_wrong_folder_says_what_was_expected(tmp_path, cls, expected):
    _photo(tmp_path / "x.jpg")
    with pytest.raises(ValueError, match=re.escape(expected)):
        cls(tmp_path)


def test_missing_path_and_unknown_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        open_dataset(tmp_path / "nope")
    with pytest.raises(ValueError, match="unknown dataset layout 'idrid'; choose one of: auto, idrid-seg, "):
        open_dataset(tmp_path, layout="idrid")


def test_a_mask_of_the_wrong_size_names_both_files_and_sizes(tmp_path):
    _idrid_seg(tmp_path)
    truth = tmp_path / "A. Segmentation" / "2. All Segmentation Groundtruths" / "a. Training Set"
    _mask(truth / "2. Haemorrhages" / "IDRiD_01_HE.tif", [(1, 1)], h=W, w=H, mode="RGB")
    reader = IDRiDSegmentationReader(tmp_path)  # sizes are checked when an image is loaded
    with pytest.raises(
        ValueError,
        match=r"IDRiD_01_HE\.tif: the HE mask is 40x48 pixels but its image .*IDRiD_01\.jpg is 48x40",
    ):
        reader[0]
    assert reader[1].name == "IDRiD_02"


# ----------------------------------------------------------------------------------------- laziness, subsets


def test_readers_are_lazy_and_subsettable(tmp_path, monkeypatch):
    reader = FGADRReader(_fgadr(tmp_path))
    calls = []
    import drgnet.data.preprocess as preprocess

    real = preprocess.load_rgb
    monkeypatch.setattr(preprocess, "load_rgb", lambda p: calls.append(Path(p).name) or real(p))
    assert reader.grades == [2, 0, 4] and reader.names and calls == []
    part = reader.subset([2, 0])
    assert part.names == ["0003_4", "0001_2"] and len(reader) == 3
    assert [s.grade for s in part] == [4, 2]
    assert calls == ["0003_4.png", "0001_2.png"]
    assert [s.name for s in reader[0:2]] == ["0001_2", "0002_1"]
    with pytest.raises(IndexError):
        reader[3]


# ----------------------------------------------------------------------------------------- masks


def test_read_mask_handles_formats_and_depths(tmp_path):
    arr = np.zeros((H, W), np.uint8)
    arr[3, 4] = 255
    arr[5, 6] = 90  # JPEG ringing level: not lesion in a JPEG, lesion in a lossless file
    Image.fromarray(arr).save(tmp_path / "m.png")
    assert read_mask(tmp_path / "m.png").sum() == 2
    Image.fromarray(arr).save(tmp_path / "m.jpg", quality=100)
    jpg = read_mask(tmp_path / "m.jpg")
    assert jpg[3, 4] and not jpg[5, 6]
    Image.fromarray(arr.astype(np.uint16) * 257).save(tmp_path / "m16.png")  # 16-bit
    assert read_mask(tmp_path / "m16.png").sum() == 2
    Image.fromarray(arr).convert("P").save(tmp_path / "m.gif")
    assert read_mask(tmp_path / "m.gif").sum() == 2
    rgba = np.zeros((H, W, 4), np.uint8)
    rgba[..., 3] = 255  # opaque: alpha is not a lesion
    rgba[7, 8, 1] = 200
    Image.fromarray(rgba).save(tmp_path / "m_rgba.png")
    got = read_mask(tmp_path / "m_rgba.png")
    assert got.sum() == 1 and got[7, 8]
    (tmp_path / "bad.tif").write_bytes(b"not an image")
    with pytest.raises(ValueError, match=r"bad\.tif: cannot read this lesion mask"):
        read_mask(tmp_path / "bad.tif")


# ----------------------------------------------------------------------------------------- splits


def test_split_indices_is_stratified_disjoint_and_deterministic():
    grades = [0] * 50 + [1] * 20 + [2] * 20 + [3] * 7 + [4] * 3 + [None] * 4
    train, val, test = split_indices(grades, seed=3)
    assert sorted(train + val + test) == list(range(len(grades)))
    assert not (set(train) & set(val) or set(train) & set(test) or set(val) & set(test))
    assert (len(train), len(val), len(test)) == (73, 16, 15)
    for part, share in ((train, 0.7), (val, 0.15), (test, 0.15)):
        counts = Counter(grades[i] for i in part)
        for g, n in Counter(grades).items():
            assert abs(counts[g] - n * share) < 1, (g, counts[g], n * share)
    assert split_indices(grades, seed=3) == (train, val, test)
    assert split_indices(grades, seed=4) != (train, val, test)
    assert split_indices(grades, (1.0, 0.0, 0.0)) == (list(range(len(grades))), [], [])
    with pytest.raises(ValueError, match="summing to 1"):
        split_indices(grades, (0.5, 0.2, 0.2))


def test_module_exports_every_layout_in_the_registry():
    assert set(LAYOUTS) == {
        "idrid-seg",
        "idrid-grading",
        "fgadr",
        "ddr-grading",
        "ddr-seg",
        "csv",
        "synthetic",
        "folder",
    }
    assert all(name in readers.__all__ for name in ("open_dataset", "detect_layout", "split_indices"))


def test_image_folder_reader_finds_unlabelled_photographs_recursively(tmp_path):
    for rel in ("cam_a/001.jpg", "cam_b/001.png", "002.tif"):
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (40, 30), (200, 80, 50)).save(path)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / ".hidden").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / ".hidden" / "x.png")
    assert detect_layout(tmp_path) == "folder"
    reader = open_dataset(tmp_path, layout="folder", source="clinic")
    assert reader.names == ["002", "cam_a/001", "cam_b/001"]
    assert reader.grades == [None, None, None]
    sample = reader[1]
    assert sample.image.shape == (30, 40, 3) and sample.grade is None and sample.masks is None
    assert sample.source == "clinic"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no image files found"):
        open_dataset(empty, layout="folder")
