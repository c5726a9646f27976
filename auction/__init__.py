"""Gavel's auction side: the pure rules engine (`auction.rules`), storage, server and CLI."""
