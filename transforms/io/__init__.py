"""Reading and writing shards: paths and globs, WARC/WET, JSON Lines, Parquet, and the mixer's shard formats.

Every stage reads its inputs and writes its outputs through these modules (fsspec
underneath), so a rule about a file format or a path lives in one place.
"""
