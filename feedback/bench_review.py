"""``drgnet bench review``: click-to-pictures of the review app on 12-megapixel photographs, in real Chromium.

A temporary data dir gets ``--n`` synthetic fundus photographs upscaled to 4288 x 2848 (a common fundus camera's
size), each with a prediction stored through :func:`feedback.predictions.store_prediction` (so with its display
derivatives). The app is started twice on it: with derivatives (as shipped) and with
``DRGNET_REVIEW_DERIVATIVES=0`` (every page run decodes the full-size photograph and maps, as before derivatives
existed). Chromium signs in and measures, from the click to every picture of the page decoded:

- worklist -> review: "Open" on every other worklist row (nothing of those images decoded before);
- next: the "Next" button after a second on the page, through images not opened before (the page prefetched
  the next one meanwhile);
- previous: back through images just seen.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import typer

from db import migrate, repository
from db.engine import make_engine, make_sessionmaker
from db.ingest import ingest_image
from drgnet.cli._common import config_option, fail, set_option, settings_of
from drgnet.inference import LesionSummary
from drgnet.inference import Prediction as ModelPrediction
from drgnet.labels import LESIONS
from feedback.demo_seed import database_url_for
from feedback.predictions import store_prediction

WIDTH, HEIGHT = 4288, 2848
PASSWORD = "bench-password-1"
CHROMIUM = "/usr/bin/chromium"


@dataclass(frozen=True)
class ReviewBenchConfig:
    n: int = 12  # 12-megapixel photographs stored (with --reuse: how many of the stored ones the worklist shows)
    opens: int = 5  # how many are opened from the worklist; the rest are reached with Next
    baseline: bool = True  # also measure the app without display derivatives (full-size decode)


SHOWN_JS = """(old) => {
    const h = document.querySelector('h1');
    const imgs = [...document.querySelectorAll('[data-testid="stImage"] img')];
    return h && h.innerText.startsWith('Review') && h.innerText !== old && imgs.length >= 1
        && imgs.every((i) => i.complete && i.naturalWidth > 0)
        && !document.querySelector('[data-stale="true"]');
}"""


def _photo(index: int) -> tuple[np.ndarray, np.ndarray]:
    """A 4288 x 2848 fundus photograph (synthetic, upscaled, black sides as a camera makes) and its lesion masks."""
    from drgnet.data.synthetic import generate_fundus

    fundus = generate_fundus(grade=2 + index % 3, size=768, seed=11, index=index)
    side = HEIGHT
    image = cv2.resize(fundus.image, (side, side), interpolation=cv2.INTER_CUBIC)
    masks = np.stack([cv2.resize(m, (side, side), interpolation=cv2.INTER_NEAREST) for m in fundus.masks])
    pad = (WIDTH - side) // 2
    image = np.pad(image, ((0, 0), (pad, WIDTH - side - pad), (0, 0)))
    masks = np.pad(masks, ((0, 0), (0, 0), (pad, WIDTH - side - pad)))
    return image, masks


def build_data(data_dir: Path, n: int, log: Callable[[str], None]) -> None:
    """Migrate, add a clinician, store ``n`` photographs with predictions (maps and derivatives included)."""
    from PIL import Image as PILImage

    url = database_url_for(data_dir)
    migrate.upgrade(url)
    factory = make_sessionmaker(make_engine(url))
    with factory.begin() as session:
        user = repository.create_user(session, "clinician", PASSWORD, role="clinician")
    for i in range(n):
        start = time.perf_counter()
        image, masks = _photo(i)
        buf = io.BytesIO()
        PILImage.fromarray(image).save(buf, format="PNG", compress_level=1)
        probs = masks.astype(np.float32) * 0.9
        attention = cv2.GaussianBlur(masks.max(axis=0).astype(np.float32), (0, 0), 25)
        attention /= max(float(attention.max()), 1e-6)
        pred = ModelPrediction(
            grade=2,
            probs=np.array([0.05, 0.15, 0.5, 0.2, 0.1]),
            referable_probability=0.8,
            uncertainty=0.6,
            lesion_probs=probs,
            attention=attention,
            lesions={n: LesionSummary(float(masks[k].mean()), 1, 0.9) for k, n in enumerate(LESIONS)},
            fov_mask=np.ones((HEIGHT, WIDTH), bool),
            model_version="bench",
        )
        with factory.begin() as session:
            stored = ingest_image(
                session, buf.getvalue(), f"photo_{i:02d}.png", data_dir=data_dir, uploaded_by_id=user.id
            ).image
            store_prediction(session, stored, pred, model_name="bench", data_dir=data_dir, photo=image)
        log(f"  photograph {i + 1}/{n} stored with its prediction ({time.perf_counter() - start:.1f} s)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_app(data_dir: Path, derivatives: bool, log_path: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {**os.environ, "DRGNET_DATA_DIR": str(data_dir), "DRGNET_REVIEW_DERIVATIVES": "1" if derivatives else "0"}
    env.pop("DRGNET_DATABASE_URL", None)
    drgnet = Path(sys.executable).with_name("drgnet")
    log = open(log_path, "w")  # noqa: SIM115 - the process owns it until it ends
    proc = subprocess.Popen(
        [str(drgnet), "app", "--port", str(port), "--address", "127.0.0.1"],
        env=env,
        stdout=log,
        stderr=log,
        start_new_session=True,  # `drgnet app` runs Streamlit as its child: stopping the group stops both
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    _stop(proc)
    raise RuntimeError(f"the app did not start; its log: {log_path}")


def _stop(proc: subprocess.Popen) -> None:
    # Terminating only `drgnet app` left its Streamlit server running (and using the cores of the next measurement).
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def measure(url: str, n: int, opens: int, shots: Path | None = None) -> dict[str, list[float]]:
    """Seconds from a click to the review page's pictures shown, per kind of click."""
    from playwright.sync_api import sync_playwright

    out: dict[str, list[float]] = {"worklist -> review": [], "next": [], "previous": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(180_000)
        try:
            _drive(page, url, n, opens, out)
        except Exception:
            if shots is not None:
                page.screenshot(path=str(shots), full_page=True)
            raise
        finally:
            browser.close()
    return out


def _drive(page: Any, url: str, n: int, opens: int, out: dict[str, list[float]]) -> None:
    page.goto(url)
    page.get_by_label("User name").fill("clinician")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Worklist").wait_for()
    old = ""
    # Rows 0, 2, 4 ... from the worklist: the page prefetches the row after the one shown, so every other row
    # is one that nothing has decoded yet.
    for i in range(opens):
        if i:
            page.get_by_role("link", name="Worklist").click()
            page.get_by_role("heading", name="Worklist").wait_for()
        _settled(page)
        button = page.locator('[data-testid="stButton"]').get_by_role("button", name="Open", exact=True).nth(2 * i)
        button.scroll_into_view_if_needed()
        _settled(page)
        start = time.perf_counter()
        button.click()
        _shown(page, old)
        out["worklist -> review"].append(time.perf_counter() - start)
        old = page.locator("h1").first.inner_text()
    steps_left = n - 1 - 2 * (opens - 1)
    for name, steps in (("next", steps_left), ("previous", steps_left)):
        for _ in range(steps):
            _settled(page)  # and a second more: a reader looks at the photograph before moving on (prefetch time)
            # The button's name carries its keyboard shortcut ("Next N").
            buttons = page.locator('[data-testid="stButton"] button')
            button = buttons.filter(has_text=re.compile(rf"^{name.capitalize()}\s*[NP]?$")).first
            if button.is_disabled():
                break
            start = time.perf_counter()
            button.click()
            _shown(page, old)
            out[name].append(time.perf_counter() - start)
            old = page.locator("h1").first.inner_text()


def _shown(page: Any, old_title: str) -> None:
    # The overview decoded, and the correction canvas (inside its component's shadow DOM) with its background.
    page.wait_for_function(SHOWN_JS, arg=old_title)
    page.locator("canvas.upper-canvas").first.wait_for()


def _settled(page: Any) -> None:
    page.wait_for_function("() => !document.querySelector('[data-stale=\"true\"]')")
    page.wait_for_timeout(1000)


def _stats(values: list[float]) -> str:
    if not values:
        return "n/a | n/a | 0"
    p90 = float(np.percentile(values, 90))
    return f"{statistics.median(values):.2f} | {p90:.2f} | {len(values)}"


def markdown(results: dict[str, dict[str, list[float]]], n: int) -> str:
    lines = [
        f"Click to pictures shown on the review page, {WIDTH} x {HEIGHT} photographs ({n} stored), real Chromium, "
        f"{os.cpu_count()} CPU(s) visible (seconds):",
        "",
        "| page | click | median | p90 | clicks |",
        "|---|---|---|---|---|",
    ]
    for label, rows in results.items():
        for kind, values in rows.items():
            lines.append(f"| {label} | {kind} | {_stats(values)} |")
    return "\n".join(lines) + "\n"


def bench_review(
    config: Path | None = config_option("feedback.bench_review.ReviewBenchConfig"),
    settings: list[str] = set_option(),
    out: Path = typer.Option(Path("runs/bench/review"), "--out", help="Folder for review.md."),
    keep: bool = typer.Option(False, "--keep", help="Keep the temporary data dir."),
    reuse: Path | None = typer.Option(None, "--reuse", help="A data dir a run with --keep built (skips storing)."),
) -> None:
    """Review page speed on 12-megapixel photographs, with display derivatives and (baseline) without.

    E.g. --set n=10 --set opens=3 --set baseline=false.
    """
    cfg = settings_of(ReviewBenchConfig(), config, settings)
    n, opens, baseline = cfg.n, cfg.opens, cfg.baseline
    if opens < 1 or 2 * opens > n:
        fail(f"n ({n}) must be at least twice opens ({opens}), and opens at least 1")
    if not Path(CHROMIUM).exists():
        fail(f"{CHROMIUM} not found (apt-get install chromium)")
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="drgnet-bench-review-"))
    try:
        data = reuse or tmp / "data"
        if reuse is None:
            typer.echo(f"storing {n} photographs of {WIDTH}x{HEIGHT} in {data} ...")
            build_data(data, n, typer.echo)
        results = {}
        runs = [("with derivatives", True)] + ([("without (full-size decode)", False)] if baseline else [])
        for label, derivatives in runs:
            typer.echo(f"measuring: {label} ...")
            proc, url = _start_app(data, derivatives, tmp / f"app-{int(derivatives)}.log")
            try:
                results[label] = measure(url, n, opens, out / f"failed-{int(derivatives)}.png")
            finally:
                _stop(proc)
            typer.echo("  " + ", ".join(f"{k}: {[round(v, 2) for v in vs]}" for k, vs in results[label].items()))
        text = markdown(results, n)
        (out / "review.md").write_text(text)
        typer.echo(text)
        typer.echo(f"wrote {out / 'review.md'}")
    finally:
        if keep:
            typer.echo(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
