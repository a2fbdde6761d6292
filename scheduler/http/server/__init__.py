"""The daemon's port: a small HTTP/1.1 server on httptools, with a router."""

from .server import HTTPServer, Request, Response, Router

__all__ = ["HTTPServer", "Request", "Response", "Router"]
