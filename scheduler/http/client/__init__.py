"""The outbound HTTP/1.1 client: keep-alive per origin, TLS, a proxy, and the one reading of a URL."""

from .client import ERRORS, BodyTooLarge, Http1Client, Response

__all__ = ["BodyTooLarge", "ERRORS", "Http1Client", "Response"]
