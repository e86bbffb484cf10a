"""Payments: thick benefit messages to one atomic payment order per case."""
