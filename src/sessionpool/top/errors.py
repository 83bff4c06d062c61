"""The error `sessionpool top`'s sources raise when an endpoint cannot be reached or read;
the command turns it into one line on stderr and exit status 1."""

from __future__ import annotations

from ..errors import Error

__all__ = ["EndpointError"]


class EndpointError(Error):
    """A metrics URL or database could not be reached, or did not answer as expected. The
    message names the endpoint without its password."""
