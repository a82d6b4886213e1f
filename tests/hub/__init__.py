"""A strict stand-in for the Hugging Face Hub's HTTP API, for the publishing tests (see :mod:`.server`)."""

from .server import HubServer

__all__ = ["HubServer"]
