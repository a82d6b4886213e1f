"""Which credential an endpoint request carries: the Hugging Face host policy and the one header builder.

- A self-hosted server gets no token unless the user names the variable that holds its
  key (``token_env``); the Hugging Face token (``HF_TOKEN`` or ``hf auth login``) goes by
  default only to Hugging Face hosts (:func:`is_hf_host`). :func:`choose_token` decides.
- :func:`auth_headers` is the only place a request gets credentials; the transport adds
  its headers to every request and nothing else adds any.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from urllib.parse import urlsplit

from ..errors import ConfigError

HF_HOST_SUFFIXES = ("huggingface.co", "hf.co", "huggingface.cloud", "hf.space")
"""Hosts (and their subdomains) that receive the Hugging Face token by default."""

CREDENTIAL_HEADERS = frozenset({
    "authorization", "proxy-authorization", "cookie", "api-key", "x-api-key", "x-auth-token", "x-access-token",
    "x-goog-api-key", "ocp-apim-subscription-key", "x-hf-token", "x-amz-security-token",
})  # fmt: skip
"""Headers that carry a credential: refused in ``headers`` (and ``--header``); the key goes through ``token_env``."""


def is_hf_host(url: str) -> bool:
    """Whether ``url``'s host is a Hugging Face host (:data:`HF_HOST_SUFFIXES`, or ``HF_ENDPOINT``'s host)."""
    host = (urlsplit(url).hostname or "").lower()
    hub = (urlsplit(os.environ.get("HF_ENDPOINT", "")).hostname or "").lower()
    return bool(host) and (host == hub or any(host == s or host.endswith("." + s) for s in HF_HOST_SUFFIXES))


def choose_token(urls: Sequence[str], token_env: str | None) -> str | None:
    """The token requests to ``urls`` carry: ``token_env``'s value, else the Hugging Face token for Hugging Face hosts only.

    Raises:
        ConfigError: ``token_env`` names a variable that is not set or is empty.
    """
    if token_env is not None:
        value = os.environ.get(token_env)
        if not value:
            raise ConfigError(f"environment variable {token_env} (token_env) is not set or empty")
        return value
    if not all(is_hf_host(url) for url in urls):
        return None  # the Hugging Face token is not for other servers
    from huggingface_hub import get_token

    return get_token()


def auth_headers(token: str | None) -> dict[str, str]:
    """The HTTP headers that carry ``token`` (none without one): the one place a request gets credentials."""
    return {"authorization": f"Bearer {token}"} if token else {}
