"""Pure per-record logic: HTML to blocks, language ID, miners, filters.

Nothing in this package imports Spark, Ray or vLLM, so every transform runs the
same in a Spark executor, a Ray actor and a unit test.
"""
