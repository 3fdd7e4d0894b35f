"""Mining: a web page becomes instruction–response pairs.

HTML → a `Page` of blocks (html_blocks, text_blocks, schema_org) → the miners
(miners/) → filters and PII scrubbing (transforms.filters, transforms.pii) →
near-duplicate removal (dedup). `document.PairMiner` runs the whole chain for one page.
"""
