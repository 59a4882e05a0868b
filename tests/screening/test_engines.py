"""Engines agree: PyTorch eager, PyTorch channels-last and the ONNX export on ONNX Runtime."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

from drgnet.cli import app
from drgnet.data.preprocess import load_rgb, preprocess
from drgnet.engines import ONNX_OUTPUTS, OnnxEngine, TorchEngine, export_onnx
from drgnet.inference import Predictor, model_maps
from drgnet.screening import read_results, screen

runner = CliRunner()


@pytest.fixture(scope="module")
def exported(tiny_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    result = runner.invoke(app, ["export-onnx", str(tiny_checkpoint), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "dynamic batch" in result.output
    return out


def _batch(photos, n):
    paths = sorted(photos.rglob("*.jpg"))[:n]
    return np.stack([preprocess(load_rgb(p), 64).image for p in paths])


def test_onnx_model_has_dynamic_batch_named_outputs_and_metadata(exported, tiny_checkpoint):
    proto = onnx.load(str(exported))
    (inp,) = proto.graph.input
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert inp.name == "images" and dims == ["batch", 3, 64, 64]
    assert [o.name for o in proto.graph.output] == list(ONNX_OUTPUTS)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert (
        meta["input_size"] == "64"
        and meta["model_version"] == TorchEngine.from_checkpoint(tiny_checkpoint).model_version
    )
    assert max(p.version for p in proto.opset_import if p.domain in ("", "ai.onnx")) >= 17


@pytest.mark.parametrize("n", [1, 3])
def test_onnx_runtime_matches_pytorch_eager_and_channels_last(exported, tiny_checkpoint, photos, n):
    images = _batch(photos, n)
    maps = {}
    for name, engine in {
        "eager": TorchEngine.from_checkpoint(tiny_checkpoint, channels_last=False),
        "channels_last": TorchEngine.from_checkpoint(tiny_checkpoint, channels_last=True),
        "onnx": OnnxEngine(exported),
    }.items():
        out = engine(images)
        assert out.grade_logits.shape == (n, 5) and out.lesion_logits.shape == (n, 4, 64, 64)
        assert out.attention.shape == (n, 1, 2, 2)
        maps[name] = model_maps(out.grade_logits, out.lesion_logits, out.attention, 64)
    for name in ("channels_last", "onnx"):
        np.testing.assert_allclose(maps[name].grade_probs, maps["eager"].grade_probs, atol=1e-4)
        np.testing.assert_allclose(maps[name].lesion_probs, maps["eager"].lesion_probs, atol=1e-3)
        np.testing.assert_allclose(maps[name].attention, maps["eager"].attention, atol=1e-4)


def test_screening_with_onnx_gives_the_rows_of_pytorch(exported, tiny_checkpoint, photos, tmp_path):
    torch_rows = tmp_path / "torch.csv"
    onnx_rows = tmp_path / "onnx.csv"
    screen([photos], torch_rows, TorchEngine.from_checkpoint(tiny_checkpoint), workers=0, progress=False)
    result = runner.invoke(
        app,
        [
            "screen",
            str(photos),
            "--engine",
            "onnx",
            "--onnx",
            str(exported),
            "--out",
            str(onnx_rows),
            "--workers",
            "0",
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    a = {r["path"]: r for r in read_results(torch_rows)}
    b = {r["path"]: r for r in read_results(onnx_rows)}
    assert a.keys() == b.keys()
    for path, ra in a.items():
        rb = b[path]
        assert rb["engine"] == "onnx" and rb["model_version"] == ra["model_version"]
        assert rb["grade"] == ra["grade"] and rb["sha256"] == ra["sha256"]
        for g in range(5):
            assert rb[f"p_grade_{g}"] == pytest.approx(ra[f"p_grade_{g}"], abs=1e-4)
        assert rb["SE_area_fraction"] == pytest.approx(ra["SE_area_fraction"], abs=1e-3)


class CountingEngine:
    """An engine that remembers the batch sizes it was called with."""

    def __init__(self, engine):
        self.engine, self.batches = engine, []
        self.name, self.input_size = engine.name, engine.input_size
        self.model_version, self.lesion_fov_px = engine.model_version, engine.lesion_fov_px

    def __call__(self, images):
        self.batches.append(len(images))
        return self.engine(images)


def test_tiled_lesion_maps_agree_between_onnx_runtime_and_pytorch(exported, tiny_checkpoint, photos):
    """One inference path: both engines see the same global view and the same tiles of the lesion view."""
    path = sorted(photos.rglob("*.jpg"))[0]
    onnx_engine = CountingEngine(OnnxEngine(exported))
    torch_engine = TorchEngine.from_checkpoint(tiny_checkpoint, channels_last=False)
    assert onnx_engine.lesion_fov_px == torch_engine.lesion_fov_px == 128  # the tiny preset's, via the metadata
    by_torch = Predictor(torch_engine).predict(path)
    by_onnx = Predictor(onnx_engine).predict(path)
    assert sum(onnx_engine.batches) > 1  # the global view and the tiles of the 128 px lesion view
    assert by_onnx.lesion_probs.shape == by_torch.lesion_probs.shape == (4, 128, 128)
    np.testing.assert_allclose(by_onnx.lesion_probs, by_torch.lesion_probs, atol=1e-3)
    np.testing.assert_allclose(by_onnx.probs, by_torch.probs, atol=1e-4)


def test_lesion_view_side_can_be_overridden_for_predict_and_screen(exported, tiny_checkpoint, photos, tmp_path):
    from drgnet.screening import EngineSpec

    spec = EngineSpec(kind="onnx", onnx=str(exported), lesion_fov_px=0)
    assert spec.build().lesion_fov_px == 0 and EngineSpec(kind="onnx", onnx=str(exported)).build().lesion_fov_px == 128
    path = str(sorted(photos.rglob("*.jpg"))[0])
    counts = {}
    for side in ("0", "96"):
        result = runner.invoke(
            app, ["predict", path, "--checkpoint", str(tiny_checkpoint), "--json", "--lesion-fov-px", side]
        )
        assert result.exit_code == 0, result.output
        counts[side] = json.loads(result.output.strip().splitlines()[-1])["lesions"]["SE"]["area_fraction"]
    assert counts["0"] > 0 and counts["96"] > 0  # the soft-exudate channel fires at either resolution


def test_export_refuses_old_opsets_and_onnx_engine_checks_its_file(tiny_checkpoint, tmp_path):
    with pytest.raises(ValueError, match="opset 13 is too old"):
        export_onnx(tiny_checkpoint, tmp_path / "m.onnx", opset=13)
    with pytest.raises(ValueError, match="no such ONNX model"):
        OnnxEngine(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="ONNX Runtime cannot load it"):
        OnnxEngine(tmp_path / "junk.onnx")
