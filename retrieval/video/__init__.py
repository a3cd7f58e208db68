"""Videos: which files are videos, their identity, probing, frame sampling, scene cuts and moments.

Nothing here imports PyAV at import time; :func:`retrieval.video.formats.require_av` does,
naming the ``video`` extra when it is missing.
"""
