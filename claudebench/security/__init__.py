"""The trust boundary: API tokens, who may call what, and the checks at the edge (issue 10).

models.py holds the tokens (hashed), tokens.py issues, looks up (through a Redis cache) and
revokes them, authn.py turns an ASGI scope into a Principal, edge.py checks Host and Origin and
the size limits of what a caller sends.
"""
