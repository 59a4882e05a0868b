"""Review one photograph: the prediction with overlays, and the clinician's correction.

Pictures come from the prediction's display-size derivatives (:mod:`feedback.display`), so a page run never decodes
a 12-megapixel photograph; the full-size photograph and masks are read only for the zoomed editor and for saving.

Corrections are edits in photograph coordinates (:class:`webapp.masks.Edit`): the whole photograph or a zoomed
region (up to 16 screen pixels per photo pixel), one lesion layer at a time, with every layer's edits drawn under
the canvas. The region is picked by a click on the overview, by stepping through the lesion regions, or by its centre
in photo pixels. The draft (grade, ungradable, comment, edits) lives in ``st.session_state`` and in the database
(``review_drafts``), so a rerun, a layer switch, a failed save or a browser refresh loses nothing; it is deleted in
the same transaction that saves the annotation.

Keyboard: 0-4 grade, U ungradable, A accept, S save, N / P next / previous image, Z undo the last edit.

Modules: :mod:`.page` (the page and its overview), :mod:`.regions` (which part of the photograph the editor shows),
:mod:`.editor` (the canvas), :mod:`.form` (grade, comment, save) and :mod:`.draft` (the unsaved correction).
"""

from webapp.state import COUNTER_KEY, DRAFTS_KEY, FLASH_KEY
from webapp.views.review.page import review_page

__all__ = ["COUNTER_KEY", "DRAFTS_KEY", "FLASH_KEY", "review_page"]
