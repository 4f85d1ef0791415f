"""Command-line options shared by the verbs that call a language model (``evolve``, ``curate --judge``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import click

from .client import RESPONSE_FORMATS, LLMSettings, default_cache_path
from .prompts import GraphLimits

_OPTIONS = [
    click.option("--llm-base-url", envvar="MMGEN_LLM_BASE_URL", default=None,
                 help="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1 (env MMGEN_LLM_BASE_URL)."),
    click.option("--llm-model", envvar="MMGEN_LLM_MODEL", default=None,
                 help="Model name to ask the server for (env MMGEN_LLM_MODEL)."),
    click.option("--llm-api-key-env", default=None, metavar="VAR",
                 help="Name of the environment variable holding the API key (default: none, a dummy key for "
                      "local servers)."),
    click.option("--llm-concurrency", type=click.IntRange(min=1), default=4, show_default=True,
                 help="Requests in flight at once."),
    click.option("--llm-timeout", type=click.FloatRange(min=0.1), default=60.0, show_default=True,
                 help="Seconds per request."),
    click.option("--llm-retries", type=click.IntRange(min=0), default=3, show_default=True,
                 help="Retries of a failed request (timeouts, connection errors, 429, 5xx), with backoff."),
    click.option("--llm-parse-retries", type=click.IntRange(min=0), default=2, show_default=True,
                 help="Retries after a malformed reply (with a correction appended)."),
    click.option("--llm-max-tokens", type=click.IntRange(min=1), default=512, show_default=True,
                 help="Completion tokens per reply."),
    click.option("--llm-temperature", type=click.FloatRange(min=0), default=0.0, show_default=True,
                 help="Sampling temperature (0: as deterministic as the server allows)."),
    click.option("--llm-response-format", type=click.Choice(RESPONSE_FORMATS), default="auto", show_default=True,
                 help="Structured output to ask for; auto steps down from json_schema when the server refuses."),
    click.option("--llm-cache", "llm_cache", type=click.Path(dir_okay=False, path_type=Path), default=None,
                 help="sqlite request cache (default: <cache dir>/llm/requests.sqlite; MMGEN_CACHE_DIR moves it)."),
    click.option("--no-llm-cache", is_flag=True, help="Send every request, store nothing."),
    click.option("--llm-price-in", type=click.FloatRange(min=0), default=0.0, show_default=True,
                 help="USD per million prompt tokens (for the cost in the summary)."),
    click.option("--llm-price-out", type=click.FloatRange(min=0), default=0.0, show_default=True,
                 help="USD per million completion tokens."),
    click.option("--prompt-max-objects", type=click.IntRange(min=1), default=GraphLimits.max_objects,
                 show_default=True, help="Objects of a scene graph shown to the model (the record's first)."),
    click.option("--prompt-max-relations", type=click.IntRange(min=0), default=GraphLimits.max_relations,
                 show_default=True, help="Relations shown to the model."),
    click.option("--prompt-max-text", type=click.IntRange(min=0), default=GraphLimits.max_text, show_default=True,
                 help="Text regions shown to the model."),
]

LLM_KEYS = ("llm_base_url", "llm_model", "llm_api_key_env", "llm_concurrency", "llm_timeout", "llm_retries",
            "llm_parse_retries", "llm_max_tokens", "llm_temperature", "llm_response_format", "llm_cache",
            "no_llm_cache", "llm_price_in", "llm_price_out", "prompt_max_objects", "prompt_max_relations",
            "prompt_max_text")


def llm_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add the ``--llm-*`` and ``--prompt-*`` options to a click command."""
    for option in reversed(_OPTIONS):
        fn = option(fn)
    return fn


def pop_llm_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Remove the options added by :func:`llm_options` from a command's keyword arguments."""
    return {k: kwargs.pop(k) for k in LLM_KEYS}


def settings_from(values: dict[str, Any], seed: int) -> LLMSettings:
    """:class:`LLMSettings` from the popped option values (raises ``click.UsageError`` when incomplete)."""
    if not values["llm_base_url"] or not values["llm_model"]:
        raise click.UsageError("this needs a model: give --llm-base-url and --llm-model "
                               "(or MMGEN_LLM_BASE_URL and MMGEN_LLM_MODEL)")
    cache = None if values["no_llm_cache"] else str(values["llm_cache"] or default_cache_path())
    return LLMSettings(base_url=values["llm_base_url"], model=values["llm_model"],
                       api_key_env=values["llm_api_key_env"], temperature=values["llm_temperature"],
                       max_tokens=values["llm_max_tokens"], seed=seed, timeout=values["llm_timeout"],
                       retries=values["llm_retries"], parse_retries=values["llm_parse_retries"],
                       concurrency=values["llm_concurrency"], response_format=values["llm_response_format"],
                       cache_path=cache, price_in=values["llm_price_in"], price_out=values["llm_price_out"])


def limits_from(values: dict[str, Any]) -> GraphLimits:
    return GraphLimits(max_objects=values["prompt_max_objects"], max_relations=values["prompt_max_relations"],
                       max_text=values["prompt_max_text"])


_VLM_OPTIONS = [
    click.option("--vlm", is_flag=True, help="The model sees the image(s) too (a vision-language model; needs "
                                             "--image-root)."),
    click.option("--image-root", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
                 help="[--vlm] The folder the images were annotated from (scene-graph paths are relative to it)."),
    click.option("--vlm-max-side", type=click.IntRange(min=32), default=768, show_default=True,
                 help="[--vlm] Longer side, in pixels, of the images sent to the model (JPEG data URLs)."),
]


def vlm_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--vlm``, ``--image-root`` and ``--vlm-max-side`` to a click command."""
    for option in reversed(_VLM_OPTIONS):
        fn = option(fn)
    return fn
