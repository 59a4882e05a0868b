"""The training set of a config: the training split of ``data`` plus the ``mix`` sources, as views.

Without crops and without mixed sources the training set is the plain :class:`FundusDataset` of global views, as
before; otherwise it is a :class:`~drgnet.training.views.HighResViews` over every source.
"""

from __future__ import annotations

from collections.abc import Sequence

from drgnet.config import MixSource, TrainConfig
from drgnet.data import Sample
from drgnet.data.preprocess import load_rgb
from drgnet.data.readers import open_dataset
from drgnet.data.real_samples import HEALTHY_STEMS, idrid_train4_dir, sample_photographs, skimage_retina
from drgnet.labels import GRADES
from drgnet.training.data import FundusDataset
from drgnet.training.views import HighResViews, Subset, ViewSource

#: ``MixSource.data`` naming the healthy real photographs found on this machine instead of a folder.
REAL_HEALTHY = "real-healthy"
#: ``MixSource.data`` naming the four real IDRiD photographs of the shared data folder (``DRGNET_SHARED_DIR``).
REAL_IDRID = "idrid-train4"


def healthy_real_photographs(exclude: Sequence[str] = ()) -> list[Sample]:
    """The real photographs of healthy eyes found here: scikit-image's retina and the sdists' healthy samples.

    Grade 0, no lesion masks (so a lesion loss ignores them). Empty when none is found (see
    ``drgnet.data.real_samples``). ``exclude``: names (``skimage_retina`` or a file stem) left out, unread.
    """
    paths = {}
    retina = skimage_retina()
    if retina is not None:
        paths["skimage_retina"] = retina
    found = sample_photographs()
    paths.update({stem: found[stem] for stem in HEALTHY_STEMS if stem in found})
    return [
        Sample(load_rgb(p), name, REAL_HEALTHY, grade=0, path=p) for name, p in paths.items() if name not in exclude
    ]


def healthy_names() -> list[str]:
    """Every name a healthy real photograph may have (``MixSource.exclude`` of ``real-healthy`` picks from these)."""
    return ["skimage_retina", *HEALTHY_STEMS]


def _without(samples: Sequence[Sample], exclude: Sequence[str], where: str) -> Sequence[Sample]:
    """``samples`` less the photographs named in ``exclude``; a name that is not there is an error."""
    if not exclude:
        return samples
    names = list(getattr(samples, "names", None) or [s.name for s in samples])
    unknown = sorted(set(exclude) - set(names))
    if unknown:
        raise ValueError(f"{where}: exclude names {', '.join(unknown)}, not among its photographs")
    return Subset(samples, [i for i, name in enumerate(names) if name not in exclude])


def open_mix_source(source: MixSource) -> ViewSource:
    """The photographs of one ``TrainConfig.mix`` entry, checked; errors name the entry."""
    where = f"mix source {source.data!r}"
    if not source.data:
        raise ValueError("mix source without `data` (a dataset folder, or 'real-healthy')")
    if source.weight <= 0:
        raise ValueError(f"{where}: weight must be positive, got {source.weight}")
    for name, grade in (("grade", source.grade), ("min_grade", source.min_grade or None)):
        if grade is not None and grade not in GRADES:
            raise ValueError(f"{where}: {name} {grade!r} is not an ICDR grade (0-4)")
    if source.data == REAL_HEALTHY:
        unknown = sorted(set(source.exclude) - set(healthy_names()))
        if unknown:
            raise ValueError(f"{where}: exclude names {', '.join(unknown)}; known: {', '.join(healthy_names())}")
        samples: Sequence[Sample] = healthy_real_photographs(source.exclude)
        if not samples:
            raise ValueError(f"{where}: no healthy real photograph found (see drgnet.data.real_samples)")
    elif source.data == REAL_IDRID:
        folder = idrid_train4_dir()
        if folder is None:
            raise ValueError(f"{where}: no shared data folder with data/idrid-train4 (set DRGNET_SHARED_DIR)")
        samples = _without(open_dataset(folder, layout="idrid-seg"), source.exclude, where)
    else:
        samples = _without(open_dataset(source.data, layout=source.layout), source.exclude, where)
    return ViewSource(samples, source.weight, source.grade, source.min_grade, name=source.data)


def training_set(
    cfg: TrainConfig, reader: Sequence[Sample], indices: Sequence[int], transform
) -> FundusDataset | HighResViews:
    """What ``cfg`` trains on: positions ``indices`` of ``reader`` (the training split of ``cfg.data``) and
    ``cfg.mix``."""
    if not cfg.crops_per_global and not cfg.mix:
        return FundusDataset(reader, cfg.model.input_size, transform, indices=indices)
    sources = [ViewSource(Subset(reader, indices), name=cfg.data)] if len(indices) else []
    sources += [open_mix_source(s) for s in cfg.mix]
    return views_of(sources, cfg, transform)


def views_of(sources: Sequence[ViewSource], cfg: TrainConfig, transform) -> HighResViews:
    """Global views and crops of ``sources`` with the budget and sampling of ``cfg``."""
    return HighResViews(
        sources,
        cfg.model.input_size,
        cfg.model.lesion_fov_px,
        crops_per_global=cfg.crops_per_global,
        lesion_crop_fraction=cfg.lesion_crop_fraction,
        lesion_crop_balance=cfg.lesion_crop_balance,
        transform=transform,
        grade_balanced=cfg.grade_balanced_sampling,
    )
