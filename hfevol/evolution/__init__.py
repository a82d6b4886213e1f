"""Instruction evolution: operations, their prompts and the map transforms."""

from .evol_instruct import OUTPUT_COLUMNS, EvolInstruct
from .operations import ALL_OPERATIONS, BREADTH_OPERATION, DEPTH_OPERATIONS, operation_for

__all__ = ["ALL_OPERATIONS", "BREADTH_OPERATION", "DEPTH_OPERATIONS", "OUTPUT_COLUMNS", "EvolInstruct", "operation_for"]
