"""Errors raised when data does not match its contract."""


class ContractError(ValueError):
    """Data does not match its contract; the message names the file, row and field."""
