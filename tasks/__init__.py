"""Prefect tasks: thin wrappers that run one pipeline step each and return small references."""
