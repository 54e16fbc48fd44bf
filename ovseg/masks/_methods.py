"""The cut-method registry, as ``ovseg.masks`` exports it: `register_method`, `get_method`,
`list_methods`, `CutMethod`. It lives in ``ovseg/_cut_methods.py`` (torch-free, so the command
line reads the method names, help texts and options without loading torch); its module docstring
says what an entry holds. The built-in builders are in ``_method.py`` (diffcut, random-walk) and
``_kway_method.py`` (kway).
"""
from ovseg._cut_methods import CutMethod, K_RULES, get_method, list_methods, method_help, register_method

__all__ = ["CutMethod", "K_RULES", "get_method", "list_methods", "method_help", "register_method"]
