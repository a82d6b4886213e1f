"""Instruction evolution: operations, their prompts, the map transforms, elimination and rounds."""

from .auto_evol import AutoEvolInstruct, parse_auto_evol
from .base import OUTPUT_COLUMNS, Evolver
from .elimination import RULES, Elimination
from .evol_instruct import EvolInstruct
from .operations import ALL_OPERATIONS, BREADTH_OPERATION, DEPTH_OPERATIONS, operation_for
from .rounds import evolve_rounds, split_rounds

__all__ = [
    "ALL_OPERATIONS",
    "BREADTH_OPERATION",
    "DEPTH_OPERATIONS",
    "OUTPUT_COLUMNS",
    "RULES",
    "AutoEvolInstruct",
    "Elimination",
    "EvolInstruct",
    "Evolver",
    "evolve_rounds",
    "operation_for",
    "parse_auto_evol",
    "split_rounds",
]
