"""tether: keeps local PostgreSQL copies of externally mastered data true."""

__version__ = "0.1.0"
