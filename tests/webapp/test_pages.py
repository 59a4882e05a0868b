"""Page tests with Streamlit's AppTest (no browser): the router, each page, and who may see what."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from db import repository
from db.engine import make_engine, make_sessionmaker
from db.models import AnnotationKind
from webapp.auth import SignedIn

MAIN = str(Path(__file__).resolve().parents[2] / "webapp" / "main.py")
TIMEOUT = 120


def _run_page(module_name: str, func_name: str) -> None:
    import importlib

    getattr(importlib.import_module(module_name), func_name)()


def page(module: str, func: str, user: SignedIn | None, **state) -> AppTest:
    at = AppTest.from_function(_run_page, args=(f"webapp.views.{module}", func), default_timeout=TIMEOUT)
    if user is not None:
        at.session_state["user"] = user
    for key, value in state.items():
        at.session_state[key] = value
    return at.run()


def db(data: Path):
    return make_sessionmaker(make_engine(f"sqlite:///{data / 'drgnet.db'}"))


def signed_in(data: Path, name: str) -> SignedIn:
    with db(data)() as session:
        u = repository.get_user(session, name)
        return SignedIn(u.id, u.username, u.role.value)


def texts(at: AppTest) -> str:
    parts = [e.value for e in at.markdown] + [e.value for e in at.title] + [e.value for e in at.caption]
    parts += [e.value for e in at.error] + [e.value for e in at.info] + [e.value for e in at.success]
    parts += [e.value for e in at.warning] + [e.label for e in at.metric] + [str(e.value) for e in at.subheader]
    return "\n".join(str(p) for p in parts)


def registered(at: AppTest) -> set[str]:
    return {info.get("url_pathname") for info in at._registered_pages.values()}


def login(at: AppTest, name: str, password: str) -> AppTest:
    at.text_input(key="login_username").input(name)
    at.text_input(key="login_password").input(password)
    return at.button[0].click().run()


def test_visitor_sees_only_the_login_form(app_env):
    at = AppTest.from_file(MAIN, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert [t.label for t in at.text_input] == ["User name", "Password"]
    assert "Worklist" not in texts(at)
    assert registered(at) <= {"login", ""}


def test_wrong_password_is_refused(app_env):
    at = login(AppTest.from_file(MAIN, default_timeout=TIMEOUT).run(), "clinician", "not-the-password")
    assert "Wrong user name or password" in texts(at)
    assert "user" not in at.session_state


def test_clinician_logs_in_gets_worklist_and_no_admin_pages_then_logs_out(app_env, passwords):
    at = login(AppTest.from_file(MAIN, default_timeout=TIMEOUT).run(), "clinician", passwords["clinician"])
    assert not at.exception, at.exception
    assert "Worklist" in texts(at)
    pages = registered(at)
    assert {"", "review", "upload", "dashboard"} <= pages  # "" is the default page, the worklist
    assert not pages & {"models", "users"}
    at.sidebar.button(key="logout").click().run()
    assert "user" not in at.session_state
    assert [t.label for t in at.text_input] == ["User name", "Password"]


def test_admin_gets_admin_pages(app_env, passwords):
    at = login(AppTest.from_file(MAIN, default_timeout=TIMEOUT).run(), "admin", passwords["admin"])
    assert {"models", "users"} <= registered(at)


@pytest.mark.parametrize("module,func", [("models", "models_page"), ("users", "users_page")])
def test_admin_pages_recheck_the_role(app_env, module, func):
    at = page(module, func, signed_in(app_env, "clinician"))
    assert "This page is for administrators." in texts(at)
    assert not at.button and not at.dataframe


def test_pages_need_a_user(app_env):
    at = page("worklist", "worklist_page", None)
    assert "Please sign in." in texts(at) and not at.button


def test_worklist_orders_filters_and_counts(app_env):
    at = page("worklist", "worklist_page", signed_in(app_env, "clinician"))
    assert not at.exception
    assert at.metric[0].value == "3" and at.metric[2].value == "3"
    ids = at.session_state["worklist_ids"]
    assert len(ids) == 3
    for name in ["Referable first", "Oldest unreviewed first", "Most uncertain first"]:
        at.selectbox(key="wl_strategy").select(name).run()
        assert sorted(at.session_state["worklist_ids"]) == sorted(ids)
    at.selectbox(key="wl_status").select("Reviewed by me").run()
    assert at.session_state["worklist_ids"] == []
    at.selectbox(key="wl_status").select("All").run()
    at.selectbox(key="wl_source").select("test-clinic").run()
    assert len(at.session_state["worklist_ids"]) == 3


def test_review_shows_prediction_and_saves_one_annotation(app_env):
    user = signed_in(app_env, "clinician")
    with db(app_env)() as session:
        rows = repository.review_queue(session, user.id)
    ids = [r.image.id for r in rows]
    first = ids[0]
    at = page("review", "review_page", user, review_image_id=first, worklist_ids=ids)
    assert not at.exception, at.exception
    body = texts(at)
    assert "Model prediction" in body and "tiny-v1" in body
    assert at.metric[0].label == "Predicted grade"
    # Grade probabilities, lesion areas and counts (markdown tables: no pandas conversion per run).
    assert "| Grade | Probability |" in body and "| Lesion | Regions | Area (% of field) | Peak probability |" in body
    assert body.count("| 0 No DR |") == 1 and "| Haemorrhages |" in body
    # Overlay controls re-render without error.
    at.toggle(key=f"rv_attention_{first}").set_value(True).run()
    at.slider(key=f"rv_opacity_{first}").set_value(0.8).run()
    at.radio(key=f"rv_mode0_{first}").set_value("Zoomed region").run()
    at.selectbox(key=f"rv_side_{first}").set_value(32).run()
    at.number_input(key=f"rv_cx0_{first}").set_value(20).run()
    assert not at.exception, at.exception
    assert "photo pixels x 4-35, y 48-79 at 16 screen pixels per photo pixel" in texts(at)
    # A rerun keeps what was typed; then the grade + comment are saved as one annotation.
    at.radio(key=f"rv_grade0_{first}").set_value(3)
    at.text_area(key=f"rv_comment_{first}").input("haemorrhages in all quadrants")
    form_submit = [b for b in at.button if b.label == "Save annotation"][0]
    form_submit.click().run()
    assert not at.exception, at.exception
    with db(app_env)() as session:
        anns = repository.annotations_for_image(session, first)
    assert len(anns) == 1
    assert anns[0].grade == 3 and anns[0].kind is AnnotationKind.GRADE_ONLY
    assert anns[0].comment == "haemorrhages in all quadrants"
    assert at.session_state["review_image_id"] == ids[1]  # moved on to the next image
    assert "saved" in texts(at)


def test_accept_as_is_stores_predicted_grade_and_masks(app_env):
    user = signed_in(app_env, "clinician")
    with db(app_env)() as session:
        ids = [r.image.id for r in repository.review_queue(session, user.id)]
        pred = repository.latest_prediction(session, ids[0])
    at = page("review", "review_page", user, review_image_id=ids[0], worklist_ids=ids)
    at.button(key=f"rv_accept_{ids[0]}").click().run()
    with db(app_env)() as session:
        (ann,) = repository.annotations_for_image(session, ids[0])
    assert ann.grade == pred.grade and ann.kind is AnnotationKind.FULL
    assert set(ann.mask_hashes) == {"MA", "HE", "EX", "SE"}


def test_failed_save_keeps_the_inputs(app_env, monkeypatch):
    user = signed_in(app_env, "clinician")
    with db(app_env).begin() as session:  # the account is disabled between page load and save
        ids = [r.image.id for r in repository.review_queue(session, user.id)]
    at = page("review", "review_page", user, review_image_id=ids[0], worklist_ids=ids)
    at.radio(key=f"rv_grade0_{ids[0]}").set_value(4)
    at.text_area(key=f"rv_comment_{ids[0]}").input("keep me")
    import webapp.services as services

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(services, "save_correction", boom)
    monkeypatch.setattr("webapp.views.review.form.save_correction", boom)
    [b for b in at.button if b.label == "Save annotation"][0].click().run()
    assert "not saved: disk full" in texts(at)
    assert at.radio(key=f"rv_grade0_{ids[0]}").value == 4
    assert at.text_area(key=f"rv_comment_{ids[0]}").value == "keep me"
    with db(app_env)() as session:
        assert repository.annotations_for_image(session, ids[0]) == []


def test_upload_page_renders_and_ingests(app_env, seeded_template):
    user = signed_in(app_env, "admin")  # only admins upload by default (tests/security/test_sec_upload_permission.py)
    at = page("upload", "upload_page", user)
    assert not at.exception and "tiny-v1" in texts(at)
    # AppTest cannot drive a file uploader: exercise the function the form submits to.
    from webapp.services import ingest_and_predict

    cohort = sorted((seeded_template.parent / "cohort" / "1. Original Images").glob("*.jpg"))
    buf = io.BytesIO()
    Image.fromarray(np.full((96, 96, 3), 90, np.uint8)).save(buf, format="PNG")
    files = [("bad.jpg", b"not an image"), ("grey.png", buf.getvalue())]
    files += [(p.name, p.read_bytes()) for p in (cohort[-1], cohort[0])]  # a new photograph, a known one
    out = ingest_and_predict(files, uploaded_by_id=user.id, source="upload-test")
    assert out[0].error and out[0].error.startswith("bad.jpg: not an image")
    assert out[1].error and "not a fundus photograph" in out[1].error
    assert out[2].error is None and out[2].created and out[2].predicted
    assert out[3].error is None and not out[3].created
    with db(app_env)() as session:
        assert out[1].image_id is None
        assert len(repository.review_queue(session, user.id)) == 4  # refused files leave nothing behind
        assert repository.latest_prediction(session, out[2].image_id) is not None


def test_models_page_queues_retraining_and_rolls_back(app_env):
    admin = signed_in(app_env, "admin")
    at = page("models", "models_page", admin)
    assert not at.exception, at.exception
    assert "tiny-v1" in texts(at) or at.dataframe
    at.button(key="md_retrain").click().run()
    assert "queued" in texts(at)
    with db(app_env)() as session:
        jobs = repository.list_jobs(session, kind="retrain")
    assert len(jobs) == 1
    at.button(key="md_rollback").click().run()
    assert "first one ever active" in texts(at)


def test_users_page_adds_and_disables(app_env):
    admin = signed_in(app_env, "admin")
    at = page("users", "users_page", admin)
    at.text_input(key="us_name").input("dr.smith")
    at.text_input(key="us_password").input("long-enough-pw")
    [b for b in at.button if b.label == "Add user"][0].click().run()
    assert not at.exception, at.exception
    with db(app_env)() as session:
        assert repository.get_user(session, "dr.smith").active
    at.selectbox(key="us_disable").select("dr.smith")
    at.button(key="us_disable_btn").click().run()
    with db(app_env)() as session:
        assert not repository.get_user(session, "dr.smith").active


def test_dashboard_agreement(app_env, passwords):
    user = signed_in(app_env, "clinician")
    admin = signed_in(app_env, "admin")
    at = page("dashboard", "dashboard_page", user)
    assert "No annotations yet" in texts(at)
    with db(app_env).begin() as session:
        rows = repository.review_queue(session, user.id)
        for r in rows:
            repository.add_annotation(
                session,
                r.image.id,
                user.id,
                kind="grade-only",
                grade=r.prediction.grade,
                based_on_prediction_id=r.prediction.id,
            )
        repository.add_annotation(session, rows[0].image.id, admin.id, kind="grade-only", grade=4)
    at = page("dashboard", "dashboard_page", user)
    assert not at.exception, at.exception
    body = texts(at)
    assert "Quadratic weighted kappa" in body and "Agreement between annotators" in body
    assert at.metric[0].value == "4"
    assert len(at.dataframe) == 3  # confusion, models against the experts, corrections per annotator
    models = at.dataframe[1].value
    assert list(models["Predictions"]) == ["served"] and models["Images compared"].iloc[0] == 4  # as above


def test_save_correction_merges_canvas_strokes_at_full_resolution(app_env):
    from feedback.masks import decode_full
    from webapp.services import Correction, save_correction

    user = signed_in(app_env, "clinician")
    with db(app_env)() as session:
        row = repository.review_queue(session, user.id)[0]
    h, w = row.image.height, row.image.width
    predicted = np.zeros((4, h, w), bool)
    predicted[1, 0:4, 0:4] = True  # a predicted haemorrhage, which the clinician erases
    add = np.zeros((2 * h, 2 * w), bool)  # the canvas is twice the photograph's size
    add[100:104, 60:200] = True
    remove = np.zeros((2 * h, 2 * w), bool)
    remove[0:8, 0:8] = True
    with db(app_env).begin() as session:
        ann_id = save_correction(
            session,
            image_id=row.image.id,
            annotator_id=user.id,
            prediction_id=row.prediction.id,
            predicted_masks=predicted,
            correction=Correction(grade=2, strokes={"HE": (add, remove)}),
            data_dir_str=str(app_env),
        )
    with db(app_env)() as session:
        (ann,) = repository.annotations_for_image(session, row.image.id)
    assert ann.id == ann_id and ann.kind is AnnotationKind.FULL and set(ann.mask_hashes) == {"HE"}
    from db.artifacts import artifact_store

    he = decode_full(artifact_store(app_env).get_png(ann.mask_hashes["HE"]))
    assert he.shape == (h, w)
    assert he[50:52, 30:100].all() and he.sum() == 2 * 70  # canvas rows 100-103 -> photo rows 50-51
    assert not he[0:4, 0:4].any()  # erased


def test_review_warns_when_screening_flagged_the_photograph_ungradable(app_env):
    user = signed_in(app_env, "clinician")
    with db(app_env).begin() as session:
        row = repository.review_queue(session, user.id)[0]
        old = row.prediction
        image_id = row.image.id
        repository.add_prediction(  # as `drgnet screen --db` records one: the quality verdict in the summary
            session,
            image_id,
            grade=old.grade,
            probabilities=old.probabilities,
            model_version_id=old.model_version_id,
            lesion_summary={**old.lesion_summary, "_gradable": False, "_quality_reasons": "too_dark,blurred"},
            lesion_map_hashes=old.lesion_map_hashes,
            attention_map_hash=old.attention_map_hash,
        )
    at = page("review", "review_page", user, review_image_id=image_id, worklist_ids=[image_id])
    assert not at.exception, at.exception
    assert "possibly ungradable: too_dark, blurred" in texts(at)
    at = page("review", "review_page", user, review_image_id=row.image.id + 1, worklist_ids=[row.image.id + 1])
    assert "possibly ungradable" not in texts(at)


def test_draft_survives_a_new_browser_session(app_env):
    """A refresh starts a new Streamlit session: the grade, comment and strokes come back from the database."""
    from webapp.masks import PAINTED, Edit
    from webapp.views import review

    user = signed_in(app_env, "clinician")
    with db(app_env)() as session:
        ids = [r.image.id for r in repository.review_queue(session, user.id)]
    first = ids[0]
    at = page("review", "review_page", user, review_image_id=first, worklist_ids=ids)
    at.radio(key=f"rv_grade0_{first}").set_value(4).run()
    at.text_area(key=f"rv_comment_{first}").input("venous beading").run()
    # A stroke as the canvas would hand it over (AppTest cannot draw): one edit in the draft, then persisted.
    code = np.zeros((4, 8), np.uint8)
    code[1, 2:5] = PAINTED
    at.session_state[review.DRAFTS_KEY][first]["edits"].append(Edit("HE", (10, 20, 18, 24), code))
    at.radio(key=f"rv_grade0_{first}").set_value(3).run()  # any change stores the draft
    assert not at.exception, at.exception

    fresh = page("review", "review_page", user, review_image_id=first, worklist_ids=ids)
    assert not fresh.exception, fresh.exception
    assert fresh.radio(key=f"rv_grade0_{first}").value == 3
    assert fresh.text_area(key=f"rv_comment_{first}").value == "venous beading"
    assert "Edited layers: HE (1 edit(s))" in texts(fresh)
    # Undo removes the edit (and the stored draft forgets it); saving deletes the draft.
    fresh.button(key=f"rv_undo_{first}").click().run()
    assert "Edited layers: none" in texts(fresh)
    fresh.button(key=f"rv_save_{first}").click().run()
    with db(app_env)() as session:
        (ann,) = repository.annotations_for_image(session, first)
        assert ann.grade == 3 and ann.kind is AnnotationKind.GRADE_ONLY
        assert repository.get_draft(session, user.id, first) is None


def test_grade_keys_set_the_grade_and_count_the_reviews(app_env):
    user = signed_in(app_env, "clinician")
    with db(app_env)() as session:
        ids = [r.image.id for r in repository.review_queue(session, user.id)]
    at = page("review", "review_page", user, review_image_id=ids[0], worklist_ids=ids)
    at.button(key=f"rv_g2_{ids[0]}").click().run()
    # The key renamed the grade radio (a stale browser value of the old one cannot undo the key's grade).
    assert at.radio(key=f"rv_grade1_{ids[0]}").value == 2
    assert [r.value for r in at.radio if r.label == "Your grade"] == [2]
    at.button(key=f"rv_save_{ids[0]}").click().run()
    assert at.session_state["review_image_id"] == ids[1]
    assert "reviewed this session: 1" in texts(at)
    at.button(key=f"rv_u_{ids[1]}").click().run()
    at.button(key=f"rv_save_{ids[1]}").click().run()
    with db(app_env)() as session:
        assert repository.annotations_for_image(session, ids[0])[0].grade == 2
        assert repository.annotations_for_image(session, ids[1])[0].kind is AnnotationKind.UNGRADABLE


def test_predictions_without_derivatives_get_them_once(app_env):
    from sqlalchemy import null, update

    from db.models import Prediction
    from webapp import services

    user = signed_in(app_env, "clinician")
    with db(app_env).begin() as session:  # as stored before derivatives existed
        session.execute(update(Prediction).values(display_hashes=null()))
        ids = [r.image.id for r in repository.review_queue(session, user.id)]
    services.display_cache.clear()
    at = page("review", "review_page", user, review_image_id=ids[0], worklist_ids=ids)
    assert not at.exception, at.exception
    with db(app_env)() as session:
        pred = repository.latest_prediction(session, ids[0])
        image = repository.get_image(session, ids[0])
    assert pred.display_hashes and pred.display_hashes["size"] == [image.width, image.height]
    from feedback.display import load_display

    shown = load_display(pred.display_hashes, app_env)
    assert shown.lesions.shape == (4, image.height, image.width)


def _stale_grade_report(user_id: int, image_id: int) -> None:
    import streamlit as st

    from webapp.views.review import draft as drafts

    drafts.set_grade(user_id, image_id, 3)  # the 3 key: the grade radio is renamed (generation 0 -> 1)
    # A rerun the browser asked for before it saw the rename carries the old radio's value, and Streamlit calls the
    # old radio's on_change for it, as for a change.
    st.session_state[f"rv_grade0_{image_id}"] = 0
    drafts.set_field(user_id, image_id, "grade", f"rv_grade0_{image_id}")
    st.write(f"draft grade {drafts.get_draft(user_id, image_id)['grade']}")


def test_a_stale_value_of_the_renamed_grade_radio_does_not_undo_a_grade_key(app_env):
    user = signed_in(app_env, "clinician")
    with db(app_env)() as session:
        image_id = repository.review_queue(session, user.id)[0].image.id
    at = AppTest.from_function(_stale_grade_report, args=(user.id, image_id), default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    assert "draft grade 3" in texts(at)
    with db(app_env)() as session:
        assert repository.get_draft(session, user.id, image_id)["grade"] == 3
