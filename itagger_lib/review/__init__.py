"""Review: inter-rater agreement, the VLM as a rater, and rater monitoring."""

from __future__ import annotations
