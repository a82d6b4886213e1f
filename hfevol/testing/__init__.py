"""Stand-ins for servers that cannot run here (the Hugging Face Hub), for tests and demos.

They speak the real HTTP protocols, so the real, unmodified clients (``huggingface_hub``,
``datasets``) are driven against them through ``HF_ENDPOINT``.
"""

from .hub_server import HubServer

__all__ = ["HubServer"]
