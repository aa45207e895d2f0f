"""Vocabularies: the reference mappings of coded fields (industry, country, status, currency) as data.

`document.py` is the format (one JSON file per vocabulary, validated; `VocabularyError` names file, key
and problem), `catalogue.py` the shipped `shipped/*.json` plus `VOCABULARY_PATH`'s, read once per process
(`get_vocabularies()`), `lookup.py` the per-source lookups the mapping calls for every record, and
`normalise.py` the key a free-text value is matched by. No dagster; no I/O but reading the files.
"""
