"""The test Hub's ``/api/validate-yaml`` rules for dataset card metadata.

A strict subset of what the Hub checks: the YAML block parses to a mapping; the known
fields have the right types; ``size_categories``, ``task_categories`` and ``license`` take
values from the Hub's lists (the common part of them); ``configs`` is well formed, with
unique names and at most one default.
"""

from __future__ import annotations

import re
from typing import Any

SIZE_CATEGORIES = (
    "n<1K", "1K<n<10K", "10K<n<100K", "100K<n<1M", "1M<n<10M", "10M<n<100M",
    "100M<n<1B", "1B<n<10B", "10B<n<100B", "100B<n<1T", "n>1T",
)  # fmt: skip
TASK_CATEGORIES = (
    "text-generation", "text2text-generation", "question-answering", "text-classification", "summarization",
    "translation", "fill-mask", "token-classification", "table-question-answering", "zero-shot-classification",
    "feature-extraction", "sentence-similarity", "text-retrieval", "reinforcement-learning", "other",
)  # fmt: skip
LICENSES = (
    "apache-2.0", "mit", "cc-by-4.0", "cc-by-sa-4.0", "cc-by-nc-4.0", "cc-by-nc-sa-4.0", "cc0-1.0", "odc-by",
    "odbl", "bsd-3-clause", "gpl-3.0", "llama3", "llama3.1", "llama3.2", "gemma", "openrail", "other", "unknown",
)  # fmt: skip
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
_LIST_OF_STR = ("tags", "source_datasets", "task_ids", "annotations_creators", "language_creators", "multilinguality")


def validate_card_yaml(content: str) -> list[str]:
    """The problems found in a README's YAML front matter; empty when it is valid."""
    import yaml

    if not content.startswith("---\n"):
        return []  # no metadata block: the Hub only warns
    end = content.find("\n---", 4)
    if end < 0:
        return ["The YAML metadata block is not closed with '---'."]
    try:
        data = yaml.safe_load(content[4:end])
    except yaml.YAMLError as exc:
        return [f"The YAML metadata is not valid YAML: {exc}"]
    if data is None:
        return []
    if not isinstance(data, dict):
        return ["The YAML metadata must be a mapping."]
    errors: list[str] = []
    _check_values(data, "size_categories", SIZE_CATEGORIES, errors)
    _check_values(data, "task_categories", TASK_CATEGORIES, errors)
    _check_values(data, "license", LICENSES, errors)
    for lang in _as_list(data.get("language")):
        if not (isinstance(lang, str) and _LANGUAGE.match(lang)):
            errors.append(f'"language" must be ISO 639 codes; got {lang!r}.')
    for key in _LIST_OF_STR:
        value = data.get(key)
        if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)) and not isinstance(value, str):
            errors.append(f'"{key}" must be a list of strings.')
    if "pretty_name" in data and not isinstance(data["pretty_name"], str):
        errors.append('"pretty_name" must be a string.')
    if "configs" in data:
        errors.extend(_check_configs(data["configs"]))
    return errors


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _check_values(data: dict[str, Any], key: str, allowed: tuple[str, ...], errors: list[str]) -> None:
    for value in _as_list(data.get(key)):
        if value not in allowed:
            errors.append(f'"{key}" has an unknown value {value!r}.')


def _check_configs(configs: Any) -> list[str]:
    if not isinstance(configs, list) or not configs:
        return ['"configs" must be a non-empty list.']
    errors: list[str] = []
    names: list[str] = []
    defaults = 0
    for i, config in enumerate(configs):
        if not isinstance(config, dict) or not isinstance(config.get("config_name"), str):
            errors.append(f'"configs[{i}]" must be a mapping with a string "config_name".')
            continue
        names.append(config["config_name"])
        defaults += bool(config.get("default"))
        files = config.get("data_files")
        if files is None and "data_dir" not in config:
            errors.append(f'"configs[{i}]" needs "data_files" or "data_dir".')
        elif files is not None and not _data_files_ok(files):
            errors.append(f'"configs[{i}].data_files" must be a path, a list of paths, or a list of {{split, path}}.')
    if len(set(names)) != len(names):
        errors.append('"configs" has duplicate "config_name" values.')
    if defaults > 1:
        errors.append('"configs" marks more than one config as default.')
    return errors


def _data_files_ok(files: Any) -> bool:
    if isinstance(files, str):
        return True
    if not isinstance(files, list) or not files:
        return False
    if all(isinstance(f, str) for f in files):
        return True
    return all(
        isinstance(f, dict)
        and isinstance(f.get("split"), str)
        and (isinstance(f.get("path"), str) or (isinstance(f.get("path"), list) and all(isinstance(p, str) for p in f["path"])))
        for f in files
    )
