"""Comparative studies in the database: near-duplicate control, pairwise and best–worst
studies, their queue, choices, scores and exports.

The science (schedules, Bradley–Terry and best–worst scores, reliability, pHash, grouping,
splits) is pure and lives in :mod:`itagger_lib.designs`; this package maps image ids,
raters and trials to the item numbers those functions take, and stores what people and
VLMs chose. Usage end to end: ``docs/designs.md``, "In the workbench".
"""
