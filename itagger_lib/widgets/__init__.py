"""Notebook widgets: thin classes over library calls (tested in pytest and in a real browser).

They hold a :class:`~itagger_lib.workspace.Workspace` and call the library's functions;
none runs SQL of its own (the reads they show are in :mod:`itagger_lib.browse`,
:mod:`itagger_lib.science.results` and :mod:`itagger_lib.ratings.frames`).
"""
