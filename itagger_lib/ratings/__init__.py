"""The ratings room: studies and their queue, recording answers, imports, and reading ratings.

* :mod:`.studies` — rating studies (images, raters per image, codebook, gold and repeat items);
* :mod:`.queue` — who rates which image next (claims, resume, gold, repeats, progress);
* :mod:`.recording` — write-through recording of human answers from the workbench;
* :mod:`.imports` — ratings collected elsewhere (paper forms, survey tools), each import a run;
* :mod:`.frames` and :mod:`.arrow` — the one reader of ratings that the export, the
  explorer, the inspector and the workbench share (reads apart from writes).

Agreement, rater monitoring and adjudication are the review room (:mod:`itagger_lib.review`).
"""

from __future__ import annotations

from itagger_lib.ratings.frames import image_ratings, mean_ratings, ratings_arrow, ratings_frame
from itagger_lib.ratings.imports import ImportReport, add_ratings
from itagger_lib.ratings.queue import Item, next_assignment, progress, rater_items
from itagger_lib.ratings.recording import SOURCES, rater_ratings, record_rating
from itagger_lib.ratings.studies import StudyInfo, create_study, get_study, list_studies

__all__ = [
    "SOURCES",
    "ImportReport",
    "Item",
    "StudyInfo",
    "add_ratings",
    "create_study",
    "get_study",
    "image_ratings",
    "list_studies",
    "mean_ratings",
    "next_assignment",
    "progress",
    "rater_items",
    "rater_ratings",
    "ratings_arrow",
    "ratings_frame",
    "record_rating",
]
