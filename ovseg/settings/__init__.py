"""Torch-free facts and checks of every setting: importing this package loads neither torch nor a model.

    defaults.py  the paper's numbers (alpha, tau, PAMR), named once
    catalog.py   what the checks know of each backbone (stride, resolution, attention) and method
    methods.py   the cut-method registry (names, options, K rules; builders imported on first use)
    checks.py    SettingError and the checks that need no model (output folder, weights paths)
    devices.py   device names: the pre-check before torch, and the resolution with torch
    weights.py   where weights come from (local folder, Hugging Face cache, download) and the
                 message a user without network gets

A bad setting raises ``SettingError(setting, message)``; the commands turn it into a usage error
on the matching option (exit code 2).
"""
from ovseg.settings.checks import SettingError
from ovseg.settings.weights import WeightsNotFoundError

__all__ = ["SettingError", "WeightsNotFoundError"]
