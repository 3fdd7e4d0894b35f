"""One document in, finished pairs out: extract, detect language, mine, clean, judge.

This is the whole per-record mining logic; the Spark job only feeds it files
and deduplicates across the job. Every drop is counted as `drop:<reason>`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace

from transforms import filters, pii
from transforms.decontaminate import BenchmarkIndex
from transforms.langid import get_language_identifier
from transforms.mine import dedup
from transforms.mine.blocks import Page
from transforms.mine.html_blocks import html_to_page
from transforms.mine.miners.faq_sections import mine_faq_sections
from transforms.mine.miners.howto import mine_howto
from transforms.mine.miners.markup import mine_markup
from transforms.mine.miners.question_pages import mine_question_pages
from transforms.mine.miners.question_sentences import mine_question_sentences
from transforms.mine.text_blocks import text_to_page
from transforms.records import Candidate, Provenance, pair_row

MINERS: dict[str, Callable[[Page], Iterable[Candidate]]] = {
    "markup": mine_markup,
    "faq_sections": mine_faq_sections,
    "question_pages": mine_question_pages,
    "question_sentences": mine_question_sentences,
    "howto": mine_howto,
}

# fastText reads about this much of a page to name its language; more text
# costs time without changing the answer on real pages.
PAGE_LANG_SAMPLE_CHARS = 2000


@dataclass
class PairMiner:
    """Everything one worker needs to mine documents, loaded once per process."""

    languages: tuple[str, ...] = ("en", "zh")
    miners: tuple[str, ...] = tuple(MINERS)
    min_lang_score: float = 0.5
    filter_config: filters.FilterConfig = field(default_factory=filters.FilterConfig)
    classifier_path: str | None = None
    classifier_threshold: float = 0.5
    lid_model: str | None = None
    # transforms.decontaminate.BenchmarkIndex: pairs sharing an n-gram with a benchmark are dropped.
    benchmark_index: BenchmarkIndex | None = None

    def __post_init__(self) -> None:
        self._lid = get_language_identifier(self.lid_model)
        self._miners = [(name, MINERS[name]) for name in self.miners]
        self._classifier = None
        if self.classifier_path:
            from transforms.mine.instruction_classifier import InstructionClassifier

            self._classifier = InstructionClassifier(self.classifier_path)

    def page_of(self, url: str, html: str | bytes | None, text: str | None) -> Page:
        page = html_to_page(html, url) if html is not None else text_to_page(text or "", url)
        page.lang, page.lang_score = self._lid.identify(page.text()[:PAGE_LANG_SAMPLE_CHARS])
        return page

    def mine(
        self, url: str, html: str | bytes | None, text: str | None, counters: Counter,
        provenance: Provenance | None = None,
    ) -> Iterator[dict]:
        """The kept pairs of one page; `provenance` locates the page in its input file."""
        provenance = provenance or Provenance()
        page = self.page_of(url, html, text)
        if not page.blocks and not page.markup:
            counters["skip:no_content"] += 1
            return
        counters[f"lang:{page.lang or 'unknown'}"] += 1
        rows = [row for _, miner in self._miners for candidate in miner(page)
                if (row := self.finish(candidate, page, counters, provenance)) is not None]
        keys = dedup.pair_dedup_keys([(row["instruction"], row["input"], row["output"]) for row in rows])
        for row, (exact, bands) in zip(rows, keys):
            row["exact_key"], row["band_keys"] = exact, bands
            yield row

    def finish(self, c: Candidate, page: Page, counters: Counter, provenance: Provenance) -> dict | None:
        """The candidate's row, or None when a rule drops it (counted); `mine` adds the dedup
        keys to a page's rows together."""
        instruction, n1 = pii.scrub_pii(c.instruction.strip())
        input_, n2 = pii.scrub_pii(c.input.strip())
        output, n3 = pii.scrub_pii(c.output.strip())
        if n1 + n2 + n3:
            counters["pii_scrubbed"] += n1 + n2 + n3
        (q_lang, q_score), (a_lang, a_score) = self._lid.identify_many([f"{instruction} {input_}", output])
        reason = filters.check_lang_agreement((q_lang, q_score), (a_lang, a_score), self.filter_config)
        if reason is None and self.languages and a_lang not in self.languages:
            reason = "language_not_wanted"
        if reason is None and a_score < self.min_lang_score:
            reason = "low_lang_score"
        if reason is None:
            reason = filters.reject_reason(instruction, input_, output, a_lang, self.filter_config)
        score = None
        if reason is None and self._classifier is not None:
            from transforms.mine.instruction_classifier import pair_text

            score = self._classifier.score(pair_text(instruction, input_, output))
            if score < self.classifier_threshold:
                reason = "classifier_below_threshold"
        if reason is None and self.benchmark_index is not None:
            reason = self.benchmark_index.contamination(instruction, input_, output)
        if reason is not None:
            counters[f"drop:{reason}"] += 1
            return None
        counters[f"mined:{c.miner}:{c.kind}"] += 1
        return pair_row(instruction=instruction, input_=input_, output=output, kind=c.kind, miner=c.miner,
                        confidence=c.confidence, lang=a_lang, lang_score=a_score, title=page.title,
                        classifier_score=score, provenance=replace(provenance, source_url=page.url))
