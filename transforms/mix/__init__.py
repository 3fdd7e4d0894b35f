"""Mixing: instruction pairs rendered in varied surface formats (render) and
interleaved into the pretraining stream at a token ratio (interleave).
"""
