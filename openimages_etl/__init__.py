"""openimages-etl"""

from openimages_etl.orchestration.astguard import serialise_ast_parse

serialise_ast_parse()  # before any task thread starts: see astguard.py

__version__ = "0.1.0"
