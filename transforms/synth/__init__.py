"""Synthesis: prompts for an LLM and the parsing of what it returns.

Template-filled instructions (instruction_templates, slot_fillers, extractive_answers),
Self-Instruct bootstrapping (seed_tasks, self_instruct, novelty_index, rouge) and
grounded QA about documents (doc_qa); prompts renders the packaged Jinja prompts.
"""
